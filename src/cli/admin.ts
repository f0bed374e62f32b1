/**
 * `raftkv admin`: the operator's commands, sent to a node's admin service (its raft gRPC address).
 * Changes go to the leader: the client follows the endpoint's redirect. Output is for people, or JSON
 * with `--json`; a failure exits with a status that says what kind it was (see ADMIN_EXIT).
 */
import { AdminClient, type MembershipChange } from "../api/admin/client.js";
import {
  AdminError,
  AdminNotLeaderError,
  AdminTimeoutError,
  ChangeRefusedError,
  InvalidAdminRequestError,
  NodeUnavailableError,
  NodeUnreachableError,
  OutcomeUnknownError,
  UnknownNodeError,
} from "../api/admin/errors.js";
import type { MembershipView } from "../api/admin/node-status.js";
import { addressProblem } from "../kv/address-book.js";
import { gatherClusterStatus, renderClusterStatus } from "./cluster-status.js";
import { parseArgsOrUsage, positiveIntFlag, UsageError } from "./usage-error.js";

/** Exit statuses, by what went wrong. */
export const ADMIN_EXIT = {
  usage: 2,
  notLeader: 3,
  unknownNode: 4,
  refused: 5,
  timeout: 6,
  unreachable: 7,
  other: 1,
} as const;

export function adminExitStatus(err: unknown): number {
  if (err instanceof UsageError || err instanceof InvalidAdminRequestError) return ADMIN_EXIT.usage;
  if (err instanceof AdminNotLeaderError) return ADMIN_EXIT.notLeader;
  if (err instanceof UnknownNodeError) return ADMIN_EXIT.unknownNode;
  if (err instanceof ChangeRefusedError) return ADMIN_EXIT.refused;
  if (err instanceof AdminTimeoutError || err instanceof OutcomeUnknownError) return ADMIN_EXIT.timeout;
  if (err instanceof NodeUnreachableError || err instanceof NodeUnavailableError)
    return ADMIN_EXIT.unreachable;
  return ADMIN_EXIT.other;
}

function nodeId(text: string | undefined, what: string): number {
  if (text === undefined) throw new UsageError(`${what}: the node ID is missing`);
  const id = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new UsageError(`${what}: a node ID is a positive integer, got ${JSON.stringify(text)}`);
  return id;
}

function nodeAddress(text: string | undefined, what: string): string {
  if (text === undefined) throw new UsageError(`${what}: the node's ADDRESS (host:port) is missing`);
  const problem = addressProblem(text);
  if (problem !== null) throw new UsageError(`${what}: ${problem}`);
  return text;
}

function expectArgs(command: string, args: readonly string[], count: number): void {
  if (args.length > count) throw new UsageError(`${command}: unexpected ${JSON.stringify(args[count])}`);
}

function membershipLine(m: MembershipView): string {
  const ids = (l: readonly number[]) => (l.length === 0 ? "none" : l.join(", "));
  return `voters ${ids(m.voters)}; learners ${ids(m.learners)}`;
}

/** Runs one admin command; what it prints goes to `out`. */
export async function admin(argv: readonly string[], out: (text: string) => void): Promise<void> {
  const { values, positionals } = parseArgsOrUsage({
    args: [...argv],
    options: { endpoint: { type: "string" }, json: { type: "boolean" }, "timeout-ms": { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const json = values.json === true;
  if (values.endpoint === undefined) throw new UsageError("--endpoint HOST:PORT is required");
  const endpointProblem = addressProblem(values.endpoint);
  if (endpointProblem !== null) throw new UsageError(`--endpoint: ${endpointProblem}`);
  const timeoutMs =
    values["timeout-ms"] === undefined ? 10_000 : positiveIntFlag("timeout-ms", values["timeout-ms"]);
  const [command, ...args] = positionals;
  if (command === undefined) throw new UsageError("no admin command given");
  const client = new AdminClient(values.endpoint, { timeoutMs });
  try {
    switch (command) {
      case "status": {
        expectArgs(command, args, 0);
        const status = await gatherClusterStatus(client, timeoutMs);
        out(json ? JSON.stringify(status, null, 2) : renderClusterStatus(status));
        return;
      }
      case "add-voter":
      case "add-learner":
      case "promote":
      case "remove": {
        const withAddress = command === "add-voter" || command === "add-learner";
        expectArgs(command, args, withAddress ? 2 : 1);
        const id = nodeId(args[0], command);
        const change: MembershipChange = withAddress
          ? { type: command, id, address: nodeAddress(args[1], command) }
          : { type: command, id };
        const membership = await client.changeMembership(change);
        const done = {
          "add-voter": `node ${id} added as a voter`,
          "add-learner": `node ${id} added as a learner`,
          promote: `node ${id} promoted to voter`,
          remove: `node ${id} removed`,
        }[command];
        out(json ? JSON.stringify({ membership }, null, 2) : `${done}; ${membershipLine(membership)}`);
        return;
      }
      case "transfer-leader": {
        expectArgs(command, args, 1);
        const leader = await client.transferLeader(nodeId(args[0], command));
        out(json ? JSON.stringify({ leader }, null, 2) : `node ${leader} leads`);
        return;
      }
      default:
        throw new UsageError(`unknown admin command ${JSON.stringify(command)}`);
    }
  } finally {
    client.close();
  }
}

/** An error as JSON, for `--json` callers: its class and its fields. */
export function adminErrorJson(err: unknown): string {
  if (!(err instanceof Error)) return JSON.stringify({ error: { name: "Error", message: String(err) } });
  const fields: Record<string, unknown> = { name: err.name, message: err.message };
  if (err instanceof AdminError)
    for (const [k, v] of Object.entries(err)) if (typeof v !== "function" && k !== "name") fields[k] = v;
  return JSON.stringify({ error: fields });
}
