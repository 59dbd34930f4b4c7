#!/usr/bin/env node
/**
 * `wicket`: one file per command group registers its commands here. Errors
 * become one clear line on stderr (or a JSON object with --json) and a
 * non-zero exit; a WicketError's code picks the exit status.
 */
import { Command, CommanderError } from 'commander';
import { WicketError, errorMessage } from '../errors.js';
import { registerInit } from './init.js';
import { registerServe } from './serve.js';
import { registerUser } from './user.js';
import { registerToken } from './token.js';
import { registerPolicy } from './policy.js';
import { registerAudit } from './audit.js';
import { registerSessions } from './sessions.js';
import { registerSegment } from './segment.js';
import { registerRequest } from './request.js';

export function buildProgram(): Command {
  const program = new Command('wicket')
    .description('privileged-access broker for PostgreSQL, MySQL/MariaDB and SSH')
    .option('--config <file>', 'config file (default: $WICKET_CONFIG, then ./wicket.yaml)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError('(run wicket --help for usage)')
    .exitOverride();
  for (const register of [registerInit, registerServe, registerUser, registerToken, registerPolicy, registerAudit, registerSessions, registerSegment, registerRequest]) {
    register(program);
  }
  // Subcommands inherit exitOverride so usage errors reach the handler below.
  for (const c of program.commands) c.exitOverride();
  return program;
}

function fail(err: unknown, json: boolean): never {
  if (err instanceof CommanderError) {
    // commander already printed its message (or help); keep its exit code (0 for --help/--version).
    process.exit(err.exitCode);
  }
  const code = err instanceof WicketError ? err.code : 'WICKET_ERR_INTERNAL';
  const message = errorMessage(err);
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`wicket: ${message}\n`);
  process.exit(code === 'WICKET_ERR_USAGE' ? 2 : 1);
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    fail(err, argv.includes('--json'));
  }
}

void main(process.argv);
