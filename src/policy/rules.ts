/**
 * Rule matching shared by decide() and the policy audit. A rule is named by
 * its position in config (`developer.allow[1]`) because rules have no names
 * of their own and people need to find the one that decided.
 */
import type { Protocol, RuleConfig, TargetConfig, UserConfig } from '../config/schema.js';
import type { PolicyConfig, RuleRef } from './types.js';

export interface RuleEntry {
  readonly ref: RuleRef;
  readonly rule: RuleConfig;
}

export function ruleLabel(role: string, index: number): string {
  return `${role}.allow[${index}]`;
}

export function ruleRef(role: string, index: number): RuleRef {
  return { role, index, label: ruleLabel(role, index) };
}

/**
 * A rule without `access:` grants write. DESIGN.md §3's `{ segments: [sandbox] }`
 * is a full sandbox shell, so an omitted access means "no restriction"; rules
 * that should be read-only must say `access: read`.
 */
export function ruleAccess(rule: RuleConfig): 'read' | 'write' {
  return rule.access ?? 'write';
}

export function needsApproval(rule: RuleConfig): boolean {
  return rule.approval === 'required';
}

/**
 * Whether the rule names the target: its segment (or '*'), and, when the rule
 * narrows them, the target's protocol and the target itself. Approval is not
 * considered here: a gated rule still "reaches" the target.
 */
export function ruleMatches(rule: RuleConfig, target: TargetConfig): boolean {
  if (!rule.segments.includes('*') && !rule.segments.includes(target.segment)) return false;
  if (rule.protocols !== undefined && !rule.protocols.includes(target.protocol)) return false;
  if (rule.targets !== undefined && !rule.targets.includes(target.name)) return false;
  return true;
}

/** Every rule of every role, in config order. */
export function allRules(config: PolicyConfig): RuleEntry[] {
  const out: RuleEntry[] = [];
  for (const role of config.roles) {
    (role.allow ?? []).forEach((rule, index) => out.push({ ref: ruleRef(role.name, index), rule }));
  }
  return out;
}

/**
 * The rules a user holds, in user.roles order then rule order. Roles the user
 * lists but config does not define grant nothing (deny by default); a role
 * listed twice is taken once so its rules are not counted double.
 */
export function userRules(config: PolicyConfig, user: UserConfig): RuleEntry[] {
  const out: RuleEntry[] = [];
  const seen = new Set<string>();
  for (const roleName of user.roles) {
    if (seen.has(roleName)) continue;
    seen.add(roleName);
    const role = config.roles.find((r) => r.name === roleName);
    if (role === undefined) continue;
    (role.allow ?? []).forEach((rule, index) => out.push({ ref: ruleRef(role.name, index), rule }));
  }
  return out;
}

/**
 * Whether a client speaking `client` may reach a target of protocol `target`.
 * Local `shell` targets are reached through the ssh adapter (DESIGN.md §1,
 * `ssh -p 2222 alice@sandbox@host`), so ssh reaches shell; otherwise the
 * protocols must be equal.
 */
export function protocolReaches(client: Protocol, target: Protocol): boolean {
  return client === target || (client === 'ssh' && target === 'shell');
}
