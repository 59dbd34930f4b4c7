/**
 * Classifies one Postgres raw parse tree (libpg-query JSON) by walking every
 * nested object and array, so no node type (a new one included) can hide a
 * DeleteStmt, a set_config() call or a data-modifying CTE from the checks.
 *
 * In the JSON, a polymorphic child is wrapped as `{ NodeType: {...fields} }`
 * and node type names are the only keys that start with an upper-case letter.
 * A few fields hold a node unwrapped: `setstmt` (a VariableSetStmt in ALTER
 * ROLE/DATABASE/SYSTEM ... SET), `intoClause` (SELECT INTO), `larg`/`rarg`
 * (SelectStmt branches, reached by the generic walk anyway).
 */
import type { DenySqlClass } from '../config/schema.js';
import { DENY_SQL_CLASSES } from '../config/schema.js';
import type { Obj, SettingEffect } from './postgres-settings.js';
import { isConstTrue, isObj, setConfigEffect, unwrap, variableSetEffect } from './postgres-settings.js';

/**
 * The `ddl` class: statements that create, change or drop objects, grant or
 * revoke privileges, or rewrite whole relations. SELECT INTO (`intoClause`)
 * is ddl too. TRUNCATE has its own class and is not in this list.
 */
export const DDL_NODES: ReadonlySet<string> = new Set([
  // CREATE ...
  'CreateStmt', 'CreateTableAsStmt', 'CreateSchemaStmt', 'CreateTableSpaceStmt', 'CreateExtensionStmt',
  'CreateFdwStmt', 'CreateForeignServerStmt', 'CreateForeignTableStmt', 'CreateUserMappingStmt',
  'CreatePolicyStmt', 'CreateAmStmt', 'CreateTrigStmt', 'CreateEventTrigStmt', 'CreatePLangStmt',
  'CreateRoleStmt', 'CreateSeqStmt', 'DefineStmt', 'CreateDomainStmt', 'CreateOpClassStmt',
  'CreateOpFamilyStmt', 'IndexStmt', 'CreateStatsStmt', 'CreateFunctionStmt', 'RuleStmt',
  'CompositeTypeStmt', 'CreateEnumStmt', 'CreateRangeStmt', 'ViewStmt', 'CreatedbStmt',
  'CreateConversionStmt', 'CreateCastStmt', 'CreateTransformStmt', 'CreatePublicationStmt',
  'CreateSubscriptionStmt', 'ImportForeignSchemaStmt',
  // ALTER ... (RENAME, OWNER TO, SET SCHEMA, DEPENDS ON are ALTER too)
  'AlterTableStmt', 'ReplicaIdentityStmt', 'AlterCollationStmt', 'AlterDomainStmt',
  'AlterDefaultPrivilegesStmt', 'AlterTableSpaceOptionsStmt', 'AlterTableMoveAllStmt',
  'AlterExtensionStmt', 'AlterExtensionContentsStmt', 'AlterFdwStmt', 'AlterForeignServerStmt',
  'AlterUserMappingStmt', 'AlterPolicyStmt', 'AlterEventTrigStmt', 'AlterRoleStmt', 'AlterRoleSetStmt',
  'AlterSeqStmt', 'AlterOpFamilyStmt', 'AlterStatsStmt', 'AlterFunctionStmt', 'RenameStmt',
  'AlterObjectDependsStmt', 'AlterObjectSchemaStmt', 'AlterOwnerStmt', 'AlterOperatorStmt',
  'AlterTypeStmt', 'AlterEnumStmt', 'AlterDatabaseStmt', 'AlterDatabaseRefreshCollStmt',
  'AlterDatabaseSetStmt', 'AlterSystemStmt', 'AlterTSDictionaryStmt', 'AlterTSConfigurationStmt',
  'AlterPublicationStmt', 'AlterSubscriptionStmt',
  // DROP ...
  'DropStmt', 'DropTableSpaceStmt', 'DropUserMappingStmt', 'DropRoleStmt', 'DropdbStmt',
  'DropOwnedStmt', 'DropSubscriptionStmt', 'ReassignOwnedStmt',
  // privileges, comments, labels
  'GrantStmt', 'GrantRoleStmt', 'CommentStmt', 'SecLabelStmt',
  // whole-relation rewrites and maintenance
  'RefreshMatViewStmt', 'ReindexStmt', 'ClusterStmt', 'VacuumStmt',
]);

/** ddl statements Postgres itself allows in a read-only transaction: not `writes`. */
const MAINTENANCE: ReadonlySet<string> = new Set(['ReindexStmt', 'ClusterStmt', 'VacuumStmt']);

/** Statement nodes that are neither ddl nor opaque; their effects are checked below. */
const OTHER_STMTS: ReadonlySet<string> = new Set([
  'RawStmt', 'SelectStmt', 'InsertStmt', 'DeleteStmt', 'UpdateStmt', 'MergeStmt', 'SetOperationStmt',
  'ReturnStmt', 'PLAssignStmt', 'CopyStmt', 'VariableSetStmt', 'VariableShowStmt', 'TruncateStmt',
  'DeclareCursorStmt', 'ClosePortalStmt', 'FetchStmt', 'NotifyStmt', 'ListenStmt', 'UnlistenStmt',
  'TransactionStmt', 'LoadStmt', 'ExplainStmt', 'CheckPointStmt', 'DiscardStmt', 'LockStmt',
  'ConstraintsSetStmt', 'PrepareStmt', 'ExecuteStmt', 'DeallocateStmt', 'DoStmt', 'CallStmt',
]);

/** Builtins that modify data although called from a SELECT. */
export const WRITING_FUNCS: ReadonlySet<string> = new Set([
  'nextval', 'setval', 'lo_import', 'lo_export', 'lo_unlink', 'lo_create', 'lo_creat', 'lo_put',
  'lo_from_bytea', 'lo_truncate', 'lo_truncate64', 'lowrite',
]);

/**
 * Functions that run SQL given as a string on another connection, out of
 * reach of the parse tree and of the session's read-only setting: opaque.
 */
export const OPAQUE_FUNCS: ReadonlySet<string> = new Set([
  'dblink', 'dblink_exec', 'dblink_send_query', 'dblink_open', 'pg_background_launch',
]);

/** LOCK modes above ROW EXCLUSIVE (3) are refused in read-only transactions. */
const ROW_EXCLUSIVE = 3;
const ACCESS_EXCLUSIVE = 8;

export interface Classification {
  classes: DenySqlClass[];
  writes: boolean;
  readOnlyBypass: string | null;
  opaque: boolean;
}

function lastName(list: unknown): string {
  if (!Array.isArray(list) || list.length === 0) return '';
  const s = unwrap(list[list.length - 1], 'String');
  return s && typeof s.sval === 'string' ? s.sval.toLowerCase() : '';
}

class Walker {
  readonly found = new Set<DenySqlClass>();
  writes = false;
  opaque = false;
  bypass: string | null = null;

  private byPass(reason: string | null): void {
    if (reason !== null && this.bypass === null) this.bypass = reason;
  }

  private effect(e: SettingEffect): void {
    this.byPass(e.readOnlyBypass);
    if (e.lexer) this.opaque = true;
  }

  /** Iterative, so a deep tree cannot overflow the JS stack. */
  walk(root: unknown): void {
    const stack: unknown[] = [root];
    while (stack.length > 0) {
      const v = stack.pop();
      if (Array.isArray(v)) {
        for (const item of v) if (isObj(item)) stack.push(item);
        continue;
      }
      if (!isObj(v)) continue;
      for (const key of Object.keys(v)) {
        const child = v[key];
        if (!isObj(child)) continue;
        const c0 = key.charCodeAt(0);
        if (c0 >= 65 && c0 <= 90 && !Array.isArray(child)) this.node(key, child);
        else if (key === 'setstmt') this.node('VariableSetStmt', child);
        else if (key === 'intoClause') this.intoClause();
        stack.push(child);
      }
    }
  }

  private intoClause(): void {
    this.found.add('ddl');
    this.writes = true;
  }

  private node(type: string, n: Obj): void {
    switch (type) {
      case 'DeleteStmt':
        this.writes = true;
        // `WHERE CURRENT OF c` is a whereClause (CurrentOfExpr).
        if (!isObj(n.whereClause)) this.found.add('delete_without_where');
        return;
      case 'UpdateStmt': {
        this.writes = true;
        if (!isObj(n.whereClause)) this.found.add('update_without_where');
        // pg_settings has an UPDATE rule that calls set_config().
        const rel = isObj(n.relation) ? n.relation.relname : undefined;
        if (typeof rel === 'string' && rel.toLowerCase() === 'pg_settings') this.byPass('UPDATE pg_settings');
        return;
      }
      case 'InsertStmt':
      case 'MergeStmt':
        this.writes = true;
        return;
      case 'TruncateStmt':
        this.found.add('truncate');
        this.writes = true;
        return;
      case 'CopyStmt':
        if (n.is_program === true) {
          this.found.add('copy_program');
          this.writes = true;
        }
        if (n.is_from === true) this.writes = true;
        return;
      case 'SelectStmt':
        if (Array.isArray(n.lockingClause) && n.lockingClause.length > 0) this.writes = true;
        return;
      case 'LockStmt': {
        const mode = typeof n.mode === 'number' ? n.mode : ACCESS_EXCLUSIVE;
        if (mode > ROW_EXCLUSIVE) this.writes = true;
        return;
      }
      case 'VariableSetStmt':
        this.effect(variableSetEffect(n));
        return;
      case 'DefElem':
        // BEGIN/START TRANSACTION, SET TRANSACTION and SET SESSION CHARACTERISTICS
        // carry READ ONLY / READ WRITE as transaction_read_only = 1 / 0.
        if (n.defname === 'transaction_read_only' && !isConstTrue(n.arg)) this.byPass('READ WRITE transaction mode');
        return;
      case 'DiscardStmt':
        if (n.target === 'DISCARD_ALL') this.byPass('DISCARD ALL');
        return;
      case 'FuncCall': {
        const fn = lastName(n.funcname);
        if (fn === 'set_config') this.effect(setConfigEffect(n));
        else if (WRITING_FUNCS.has(fn)) this.writes = true;
        else if (OPAQUE_FUNCS.has(fn)) {
          this.opaque = true;
          this.writes = true;
        }
        return;
      }
      case 'DoStmt':
      case 'CallStmt':
        this.opaque = true;
        this.writes = true;
        return;
      default:
        if (DDL_NODES.has(type)) {
          this.found.add('ddl');
          if (!MAINTENANCE.has(type)) this.writes = true;
          if (type === 'CreateFunctionStmt') this.opaque = true;
        } else if (type.endsWith('Stmt') && !OTHER_STMTS.has(type)) {
          // A statement type this code does not know: fail closed.
          this.opaque = true;
          this.writes = true;
        }
    }
  }
}

/** Classify one statement's parse tree (the value of RawStmt.stmt). */
export function classifyPostgres(stmt: unknown): Classification {
  const w = new Walker();
  w.walk(stmt);
  return {
    classes: DENY_SQL_CLASSES.filter((c) => w.found.has(c)),
    writes: w.writes,
    readOnlyBypass: w.bypass,
    opaque: w.opaque,
  };
}
