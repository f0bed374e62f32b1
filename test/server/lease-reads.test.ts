import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InProcessCluster } from "./in-process-cluster.js";

describe("lease reads (serve --lease-reads)", () => {
  for (const leaseReads of [true, false]) {
    it(`with lease reads ${leaseReads ? "on, the leader answers a read on its lease alone" : "off, a read needs a quorum round"}`, async () => {
      // A long election timeout: the lease (9/10 of it) outlasts closing the followers.
      const c = await InProcessCluster.start(3, { leaseReads, electionTicks: 50 });
      try {
        const leader = await c.leader();
        // A leader answers reads only once it has committed an entry of its term (raft §6.4; etcd pends
        // them until then): a first read waits for that, with the followers still up.
        await leader.engine.linearizableRead();
        const committed = leader.engine.status().hardState.commit;
        for (const n of c.nodes) if (n !== leader) await n.close();
        const read = leader.engine.linearizableRead();
        if (leaseReads) assert.ok((await read) >= committed);
        else await assert.rejects(read);
      } finally {
        await c.close();
      }
    });
  }
});
