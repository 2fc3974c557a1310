//! A real local Redis Cluster: six `redis-server --cluster-enabled yes`
//! processes on free loopback ports, three primaries (slots split evenly)
//! each with one replica, every node in a directory of its own with
//! `appendfsync always`. Failure detection is quick
//! (`cluster-node-timeout` 1000 ms), so a replica takes over about two
//! seconds after its primary dies. Dropping the cluster kills every node.
//!
//! The cluster is built with plain commands rather than `redis-cli
//! --cluster create`, so that which node is whose replica is fixed: node
//! `i` (0, 1, 2) is a primary and node `i + 3` its replica.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{Persistence, RedisServer};

/// Primaries, and as many replicas.
const PRIMARIES: usize = 3;
/// The cluster's hash slots.
const SLOTS: u16 = 16_384;
/// How long the cluster may take to form, or to settle after a failover.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// A node's cluster bus listens on its port + 10000.
const BUS_OFFSET: u16 = 10_000;

/// One node as the cluster sees it (a line of `CLUSTER NODES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    /// The node's primary, for a replica.
    pub primary_id: Option<String>,
    /// Marked failed (`fail`) by the others.
    pub failed: bool,
}

/// Three primaries with a replica each. Node `i < 3` starts as a primary,
/// node `i + 3` as its replica; failovers change that, and
/// [`RedisCluster::primary_for`] tells who holds a key now.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the six nodes under `dir` and waits until the cluster is
    /// `ok` on each and every replica has synced.
    pub fn start(dir: &Path) -> anyhow::Result<RedisCluster> {
        let mut nodes = Vec::new();
        for index in 0..2 * PRIMARIES {
            let node_dir = dir.join(format!("node-{index}"));
            std::fs::create_dir_all(&node_dir).with_context(|| format!("cannot create {}", node_dir.display()))?;
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                // The other districts' shards go on while one slot range
                // has no primary.
                "--cluster-require-full-coverage",
                "no",
            ];
            let args = args.iter().map(|arg| arg.to_string()).collect();
            nodes.push(RedisServer::start_on_free_port(&node_dir, Persistence::AppendFsyncAlways, args, port_with_free_bus)?);
        }
        let cluster = RedisCluster { nodes };
        cluster.form()?;
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P0,...`: every node as a seed, so that
    /// a dispatcher finds the cluster whichever nodes are down.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port())).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Runs one command on node `index` and returns its answer.
    pub fn query<T: redis::FromRedisValue>(&self, index: usize, command: &[&str]) -> anyhow::Result<T> {
        let node = &self.nodes[index];
        let (name, args) = command.split_first().context("an empty command")?;
        let mut connection = redis::Client::open(node.url())?.get_connection_with_timeout(Duration::from_secs(5))?;
        redis::cmd(name)
            .arg(args)
            .query(&mut connection)
            .with_context(|| format!("redis command {command:?} on node {index} (port {}) failed", node.port()))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> anyhow::Result<u16> {
        let live = self.live_node()?;
        self.query(live, &["CLUSTER", "KEYSLOT", key])
    }

    /// The cluster's nodes as a live node sees them (`CLUSTER NODES`).
    pub fn cluster_nodes(&self) -> anyhow::Result<Vec<ClusterNode>> {
        let live = self.live_node()?;
        let text: String = self.query(live, &["CLUSTER", "NODES"])?;
        Ok(text.lines().filter_map(parse_node_line).collect())
    }

    /// The index of the node that serves `key`'s slot as primary now.
    pub fn primary_for(&self, key: &str) -> anyhow::Result<usize> {
        let slot = self.keyslot(key)?;
        let live = self.live_node()?;
        let slots: Vec<redis::Value> = self.query(live, &["CLUSTER", "SLOTS"])?;
        for range in slots {
            let redis::Value::Array(parts) = range else { continue };
            let (Some(redis::Value::Int(first)), Some(redis::Value::Int(last)), Some(redis::Value::Array(primary))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            if i64::from(slot) < *first || i64::from(slot) > *last {
                continue;
            }
            let Some(redis::Value::Int(port)) = primary.get(1) else { continue };
            return self.index_of_port(u16::try_from(*port)?);
        }
        anyhow::bail!("no primary serves slot {slot} of {key:?}")
    }

    /// The index of the replica of the primary at `primary`.
    pub fn replica_of(&self, primary: usize) -> anyhow::Result<usize> {
        let nodes = self.cluster_nodes()?;
        let primary_id = self.node_id(primary)?;
        let replica = nodes
            .iter()
            .find(|node| node.primary_id.as_deref() == Some(primary_id.as_str()) && !node.failed)
            .with_context(|| format!("node {primary} has no live replica: {nodes:?}"))?;
        self.index_of_port(replica.port)
    }

    /// A manual failover (`CLUSTER FAILOVER` on `replica`): its primary
    /// stops taking writes, the replica catches up with everything the
    /// primary acknowledged, and takes over; nothing is lost. Returns once
    /// `replica` is a primary and the cluster is `ok` again.
    pub fn manual_failover(&self, replica: usize) -> anyhow::Result<()> {
        let _: String = self.query(replica, &["CLUSTER", "FAILOVER"])?;
        self.wait_until("the replica to become a primary", || Ok(self.role(replica)? == "master"))?;
        self.wait_ok()
    }

    /// Kills node `index` with SIGKILL (its replica takes over once the
    /// others mark it failed, after `cluster-node-timeout`).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts node `index` again on its port and directory: it rejoins
    /// with its identity (`nodes.conf`), as a replica when another took
    /// over its slots.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.nodes[index].restart()
    }

    /// Waits until `replica` (the replica of a killed primary) has been
    /// promoted and the cluster is `ok` on every live node.
    pub fn wait_promoted(&self, replica: usize) -> anyhow::Result<()> {
        self.wait_until("the replica to be promoted", || Ok(self.role(replica)? == "master"))?;
        self.wait_ok()
    }

    /// Waits until every live node says `cluster_state:ok`.
    pub fn wait_ok(&self) -> anyhow::Result<()> {
        self.wait_until("cluster_state:ok on every live node", || {
            for index in self.live_nodes() {
                let info: String = self.query(index, &["CLUSTER", "INFO"])?;
                if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// `master` or `slave` (`ROLE`).
    pub fn role(&self, index: usize) -> anyhow::Result<String> {
        let role: Vec<redis::Value> = self.query(index, &["ROLE"])?;
        match role.first() {
            Some(redis::Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            other => anyhow::bail!("unexpected ROLE answer: {other:?}"),
        }
    }

    /// The node's cluster id (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> anyhow::Result<String> {
        self.query(index, &["CLUSTER", "MYID"])
    }

    /// Every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        let logs =
            self.nodes.iter().enumerate().map(|(index, node)| format!("--- node {index} (port {})\n{}", node.port(), node.log()));
        logs.collect::<Vec<_>>().join("\n")
    }

    fn form(&self) -> anyhow::Result<()> {
        // Distinct config epochs before the nodes meet, as redis-cli does, so
        // that the first failover's election has nothing to resolve.
        for index in 0..self.nodes.len() {
            let _: String = self.query(index, &["CLUSTER", "SET-CONFIG-EPOCH", &(index + 1).to_string()])?;
        }
        for index in 0..PRIMARIES {
            let (first, last) = slot_range(index);
            let _: String = self.query(index, &["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()])?;
        }
        for other in 1..self.nodes.len() {
            let port = self.nodes[other].port().to_string();
            let _: String = self.query(0, &["CLUSTER", "MEET", "127.0.0.1", &port])?;
        }
        let everyone = self.nodes.len();
        self.wait_until("every node to know every other", || {
            for index in 0..everyone {
                let text: String = self.query(index, &["CLUSTER", "NODES"])?;
                let known = text.lines().filter_map(parse_node_line).filter(|node| !node.id.is_empty()).count();
                if known < everyone {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        let ids = (0..PRIMARIES).map(|index| self.node_id(index)).collect::<anyhow::Result<Vec<_>>>()?;
        for (primary, id) in ids.iter().enumerate() {
            let _: String = self.query(primary + PRIMARIES, &["CLUSTER", "REPLICATE", id])?;
        }
        self.wait_ok()?;
        self.wait_until("every replica to sync with its primary", || {
            for replica in PRIMARIES..everyone {
                let info: String = self.query(replica, &["INFO", "replication"])?;
                if !info.lines().any(|line| line.trim() == "master_link_status:up") {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        // Every node must agree on the three primaries before a test relies
        // on who serves which slot.
        self.wait_until("every node to see three primaries with a replica each", || {
            for index in 0..everyone {
                let text: String = self.query(index, &["CLUSTER", "NODES"])?;
                let nodes: Vec<ClusterNode> = text.lines().filter_map(parse_node_line).collect();
                let replicas = nodes.iter().filter(|node| node.primary_id.is_some()).count();
                if replicas != PRIMARIES {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|index| self.nodes[*index].pid().is_some()).collect()
    }

    fn live_node(&self) -> anyhow::Result<usize> {
        self.live_nodes().first().copied().context("every node of the cluster is down")
    }

    fn index_of_port(&self, port: u16) -> anyhow::Result<usize> {
        self.nodes.iter().position(|node| node.port() == port).with_context(|| format!("no node of this cluster on port {port}"))
    }

    fn wait_until(&self, what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let last = check();
            if matches!(last, Ok(true)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("waited {SETTLE_WITHIN:?} for {what} (last check: {last:?}); node logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The slots of primary `index` of three: an even split, every slot covered.
fn slot_range(index: usize) -> (u32, u32) {
    let (slots, primaries) = (u32::from(SLOTS), PRIMARIES as u32);
    let index = index as u32;
    (index * slots / primaries, (index + 1) * slots / primaries - 1)
}

/// `ID IP:PORT@BUS FLAGS PRIMARY ...` → the node.
fn parse_node_line(line: &str) -> Option<ClusterNode> {
    let mut fields = line.split_whitespace();
    let id = fields.next()?.to_owned();
    let address = fields.next()?;
    let flags: Vec<&str> = fields.next()?.split(',').collect();
    let primary_id = fields.next()?;
    let port = address.split('@').next()?.rsplit_once(':')?.1.parse().ok()?;
    Some(ClusterNode {
        id,
        port,
        primary: flags.contains(&"master"),
        primary_id: (primary_id != "-").then(|| primary_id.to_owned()),
        failed: flags.contains(&"fail"),
    })
}

/// A free port whose cluster bus port (+10000) is free too.
fn port_with_free_bus() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = crate::free_port()?;
        let Some(bus) = port.checked_add(BUS_OFFSET) else { continue };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("found no free port whose bus port (+{BUS_OFFSET}) is free too, in 100 tries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_forms_and_a_manual_failover_swaps_the_roles() {
        let dir = tempfile_dir();
        let cluster = RedisCluster::start(&dir).expect("cluster");
        let primary = cluster.primary_for("pingji:{d1}:events").expect("primary");
        assert!(primary < PRIMARIES, "node {primary} is a primary at the start");
        let replica = cluster.replica_of(primary).expect("replica");
        assert_eq!(replica, primary + PRIMARIES);
        cluster.manual_failover(replica).expect("failover");
        assert_eq!(cluster.primary_for("pingji:{d1}:events").expect("primary"), replica);
        assert_eq!(cluster.role(primary).expect("role"), "slave");
        drop(cluster);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh directory under the system's temp dir (this crate has no
    /// tempfile dependency).
    fn tempfile_dir() -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let dir = std::env::temp_dir().join(format!("pingji-cluster-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn the_slots_are_split_evenly_and_wholly() {
        assert_eq!(slot_range(0), (0, 5460));
        assert_eq!(slot_range(1), (5461, 10921));
        assert_eq!(slot_range(2), (10922, 16383));
    }
}
