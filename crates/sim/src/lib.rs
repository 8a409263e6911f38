//! # sim: the deterministic simulator
//!
//! Everything a test of raftkv needs to run many nodes in one thread on virtual time, with one seed
//! driving every random choice: the executor (`executor`), the labrpc network model (`network`),
//! the lab's persister and node handle (`persister`, `lab`), the Raft tester of the lab
//! (`raft_tester`), the lab's KV service run by the production node (`kvraft`, `kv_tester`), the randomized safety simulation (`chaos`) and the same with every node on
//! raftkv's storage over a simulated disk, and disk faults (`disk_chaos`), and the production node
//! itself, `replica::Replica`, with pipelining clients (`node_chaos`). Every run keeps a trace
//! (`trace`), and a failing one is drawn as an HTML page (`viz`).

pub mod executor;
pub mod kv_tester;
pub mod kvraft;
pub mod kvsrv_tester;
pub mod lab;
pub mod network;
pub mod node_chaos;
pub mod persister;
pub mod raft_tester;
pub mod rng;
pub mod runner;
pub mod seeds_cli;
pub mod trace;
pub mod viz;
pub mod chaos;
pub mod disk_chaos;
