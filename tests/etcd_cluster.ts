/**
 * A three-member etcd cluster on loopback (real `etcd`, static bootstrap,
 * one temp data dir per member), for the tests that show the way past one
 * machine: `connect()` with every member's endpoint, members killed and
 * restarted under load. Short heartbeat and election timeouts keep a
 * re-election under a second.
 */

/** One member of a {@linkcode EtcdCluster}. */
export interface ClusterMember {
  /** etcd's `--name`. */
  readonly name: string;
  /** `127.0.0.1:PORT` of its client URL. */
  readonly address: string;
  /** Whether the process runs now. */
  readonly running: boolean;
}

/** A running three-member cluster. */
export interface EtcdCluster {
  /** The members, in bootstrap order. */
  readonly members: readonly ClusterMember[];
  /** Every member's client address. */
  readonly endpoints: string[];
  /** SIGKILLs one member (by name or address). */
  kill(member: string): Promise<void>;
  /** Starts a killed member again on its data dir and waits until healthy. */
  restart(member: string): Promise<void>;
  /** The address of the current leader (asked of a running member). */
  leader(): Promise<string>;
  /** Kills every member and removes the data dirs. */
  stop(): Promise<void>;
}

const MEMBERS = 3;
/** Longest wait for a member (or the cluster) to become healthy. */
const HEALTHY_MS_MAX = 30_000;

interface MemberState {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child?: Deno.ChildProcess;
}

function freePort(used: Set<number>): number {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (!used.has(port)) {
      used.add(port);
      return port;
    }
  }
}

/** Starts the cluster and waits until every member is healthy. */
export async function startEtcdCluster(): Promise<EtcdCluster> {
  const root = await Deno.makeTempDir({ prefix: "revkv_etcd_cluster_" });
  const used = new Set<number>();
  const states: MemberState[] = [];
  for (let i = 0; i < MEMBERS; i++) {
    states.push({
      name: `m${i}`,
      clientPort: freePort(used),
      peerPort: freePort(used),
      dataDir: `${root}/m${i}`,
    });
  }
  const initialCluster = states.map((m) =>
    `${m.name}=http://127.0.0.1:${m.peerPort}`
  ).join(",");
  const token = `revkv-cluster-${states[0]!.clientPort}`;

  const spawn = (m: MemberState, state: "new" | "existing") => {
    const client = `http://127.0.0.1:${m.clientPort}`;
    const peer = `http://127.0.0.1:${m.peerPort}`;
    m.child = new Deno.Command("etcd", {
      args: [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        `--initial-cluster-token=${token}`,
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--listen-metrics-urls=",
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=error",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  };

  const healthy = async (m: MemberState) => {
    const deadline = Date.now() + HEALTHY_MS_MAX;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${m.clientPort}/health`, {
          signal: AbortSignal.timeout(1000),
        });
        const body = await res.text();
        if (res.ok && JSON.parse(body).health === "true") return;
      } catch { /* not yet */ }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`etcd member ${m.name} not healthy in ${HEALTHY_MS_MAX}`);
  };

  const find = (member: string) => {
    const m = states.find((s) =>
      s.name === member || `127.0.0.1:${s.clientPort}` === member
    );
    if (!m) throw new Error(`no member ${member}`);
    return m;
  };

  const kill = async (member: string) => {
    const m = find(member);
    if (!m.child) return;
    try {
      m.child.kill("SIGKILL");
    } catch { /* gone */ }
    await m.child.status;
    m.child = undefined;
  };

  for (const m of states) spawn(m, "new");
  const stop = async () => {
    for (const m of states) await kill(m.name);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };
  try {
    await Promise.all(states.map(healthy));
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    get members() {
      return states.map((m) => ({
        name: m.name,
        address: `127.0.0.1:${m.clientPort}`,
        running: m.child !== undefined,
      }));
    },
    endpoints: states.map((m) => `127.0.0.1:${m.clientPort}`),
    kill,
    async restart(member) {
      const m = find(member);
      if (m.child) return;
      spawn(m, "existing");
      await healthy(m);
    },
    async leader() {
      for (const m of states) {
        if (!m.child) continue;
        const address = `127.0.0.1:${m.clientPort}`;
        const statuses = await ctlJson(address, ["endpoint", "status"]);
        if (statuses === undefined) continue;
        const leaderId = BigInt(statuses[0].Status.leader);
        const list = await ctlJson(address, ["member", "list"]);
        for (const member of list?.members ?? []) {
          if (BigInt(member.ID) === leaderId) {
            return (member.clientURLs[0] as string).replace("http://", "");
          }
        }
      }
      throw new Error("no member knows a leader");
    },
    stop,
  };
}

/**
 * `etcdctl --endpoints=<address> <args> -w json`, parsed; undefined when it
 * fails. (Member IDs lose precision as JSON numbers, the same way on both
 * sides of a comparison.)
 */
// deno-lint-ignore no-explicit-any
async function ctlJson(address: string, args: string[]): Promise<any> {
  const out = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${address}`, ...args, "-w", "json"],
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return undefined;
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
