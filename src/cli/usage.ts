/**
 * The command line's usage text. Kept apart from the commands so that printing it (or running one
 * command) loads no other command's modules.
 */
import { serveOptionsHelp } from "./serve-config.js";

const ADMIN_USAGE = `  raftkv admin --endpoint HOST:PORT [--json] [--timeout-ms N] COMMAND
    status                         every member's role, term, leader, indexes, and the leader's view of replication
    add-learner ID ADDRESS         add a node that receives the log but does not vote (start it with serve --join)
    add-voter ID ADDRESS           add a voting node directly (prefer add-learner, then promote)
    promote ID                     make a learner that has caught up a voter
    remove ID                      remove a voter or learner
    transfer-leader ID             hand leadership to a voter
  HOST:PORT is any node's raft address (--listen, or its entry in --peers); ADDRESS is the new node's.`;

export const USAGE = `usage:
  raftkv serve [--config FILE] [OPTION …]       one node; a flag overrides the config file's key of its name
${serveOptionsHelp()}
${ADMIN_USAGE}
  raftkv demo  [--base-port 6379] [--data ./data] [--nodes 3]`;
