//! Topics, cluster routes, read spreading, read-your-writes and readiness on a real cluster.

use std::time::Duration;

use serde_json::json;

use ledger_proto::ledger::ClusterStatusRequest;
use ledger_proto::ledger::ledger_client::LedgerClient;

use crate::support::{Cluster, GatewayProc, SERIAL, gateway_gossip, gateway_static, wait_for, wait_for_voters};

/// Reads on the spreading test.
const SPREAD_READS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_cluster_spreading_read_your_writes_and_readiness() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start();
    // The gateway finds the lognodes by gossip, as a non-storage member.
    let gw = gateway_gossip(&cluster.procs[0].gossip).await;
    let leader = wait_for_voters(&gw.backend, 3, Duration::from_secs(30)).await;

    // Readiness and cluster view.
    gw.get("/readyz").await.expect(200, "readyz with a leader");
    let c = gw.get("/v1/cluster").await.expect(200, "cluster").json();
    assert_eq!(c["leader_id"], leader, "{c}");
    let nodes = c["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "only lognodes are listed, not the gateway: {c}");
    assert!(nodes.iter().all(|n| n["alive"] == true), "{c}");

    // Topics: create, replay, conflict, list.
    let r = gw.post("/v1/topics", &json!({"name": "orders", "partitions": 2})).await.expect(201, "create topic");
    assert!(r.index() > 0);
    let again = gw.post("/v1/topics", &json!({"name": "orders", "partitions": 2})).await.expect(200, "replay");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    gw.post("/v1/topics", &json!({"name": "orders", "partitions": 3})).await.expect(409, "other partition count");
    gw.post("/v1/topics", &json!({"name": "audit", "partitions": 1})).await.expect(201, "create audit");
    let list = gw.get("/v1/topics?consistency=strong").await.expect(200, "list").json();
    // lognode also has its built-in `ledger` topic.
    let ours: Vec<_> =
        list["topics"].as_array().expect("topics").iter().filter(|t| t["name"] != "ledger").cloned().collect();
    assert_eq!(ours, vec![json!({"name": "audit", "partitions": 1}), json!({"name": "orders", "partitions": 2})]);

    // Produce: keyed records of one key land on one partition, in order; offsets per record.
    let records = json!({"records": [
        {"key": "k1", "value": {"n": 1}},
        {"key": "k2", "value": {"n": 2}, "headers": {"h": "x"}},
        {"key": "k1", "value": {"n": 3}},
    ]});
    let r = gw.post("/v1/topics/orders/records", &records).await.expect(200, "produce");
    let write_index = r.index();
    let body = r.json();
    let offs = body["offsets"].as_array().expect("offsets").clone();
    assert_eq!(offs.len(), 3);
    assert_eq!(offs[0]["partition"], offs[2]["partition"], "same key, same partition");
    assert_eq!(offs[2]["offset"].as_u64(), offs[0]["offset"].as_u64().map(|o| o + 1));

    // Read-your-writes on a follower: min_index from the write's Ledger-Index.
    let before = gw.reads();
    let p = offs[0]["partition"].as_u64().expect("partition");
    let f = gw
        .get(&format!("/v1/topics/orders/partitions/{p}/records?min_index={write_index}"))
        .await
        .expect(200, "fetch min_index");
    assert!(f.index() >= write_index, "served at {} < {write_index}", f.index());
    let fb = f.json();
    let values: Vec<_> = fb["records"].as_array().expect("records").iter().map(|r| r["value"].clone()).collect();
    assert!(values.contains(&json!({"n": 1})) && values.contains(&json!({"n": 3})), "{fb}");
    let after = gw.reads();
    let leader_delta = after.get(&leader).copied().unwrap_or(0) - before.get(&leader).copied().unwrap_or(0);
    assert_eq!(leader_delta, 0, "the min_index read went to the leader: {before:?} -> {after:?}");
    gw.get("/v1/topics/nope/partitions/0/records").await.expect(404, "unknown topic");
    gw.get("/v1/topics/orders/partitions/9/records").await.expect(404, "unknown partition");

    // Long poll: a fetch waiting on the end sees a record produced meanwhile.
    let addr = gw.addr;
    let poll = tokio::spawn(async move {
        crate::support::request(addr, "GET", "/v1/topics/audit/partitions/0/records?offset=0&wait_ms=8000", None).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.post("/v1/topics/audit/records", &json!({"records": [{"value": "late"}]})).await.expect(200, "produce");
    let got = poll.await.expect("join").expect(200, "long poll").json();
    assert_eq!(got["records"][0]["value"], "late", "{got}");

    // Keyed and keyless records of one request to one partition keep the request's order.
    let mixed = json!({"records": [{"key": "k", "value": 1}, {"value": 2}, {"key": "z", "value": 3}]});
    let r = gw.post("/v1/topics/audit/records", &mixed).await.expect(200, "produce mixed").json();
    let offsets: Vec<u64> =
        r["offsets"].as_array().expect("offsets").iter().map(|o| o["offset"].as_u64().expect("offset")).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "offsets in request order: {r}");
    let path = format!("/v1/topics/audit/partitions/0/records?offset={}&consistency=strong", offsets[0]);
    let got = gw.get(&path).await.expect(200, "fetch mixed").json();
    let values: Vec<_> = got["records"].as_array().expect("records").iter().map(|x| x["value"].clone()).collect();
    assert_eq!(values, vec![json!(1), json!(2), json!(3)], "{got}");

    // Read spreading: follower reads go round robin to both followers, never the leader.
    let before = gw.reads();
    for _ in 0..SPREAD_READS {
        gw.get("/v1/topics").await.expect(200, "list");
    }
    let after = gw.reads();
    let delta = |id: u64| after.get(&id).copied().unwrap_or(0) - before.get(&id).copied().unwrap_or(0);
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
    assert_eq!(delta(leader), 0, "leader served reads: {before:?} -> {after:?}");
    for f in &followers {
        assert!(delta(*f) >= SPREAD_READS / 4, "follower {f} served {} of {SPREAD_READS}: {after:?}", delta(*f));
    }
    assert_eq!(followers.iter().map(|f| delta(*f)).sum::<u64>(), SPREAD_READS);
    let metrics = String::from_utf8(gw.get("/metrics").await.expect(200, "metrics").body).expect("utf8");
    assert!(metrics.contains(&format!("gateway_backend_reads_total{{node=\"{}\"}}", followers[0])), "{metrics}");

    // The real binary joins the gossip as a gateway member, serves, and leaves on SIGTERM.
    real_binary_joins_serves_and_leaves(&cluster).await;

    // Admin removal of a follower through the leader.
    let victim = followers[1];
    let r = gw.post(&format!("/v1/cluster/nodes/{victim}/remove"), &json!({})).await.expect(200, "remove");
    assert!(r.index() > write_index);
    wait_for("the removed node to leave the membership", Duration::from_secs(30), || async {
        let c = gw.get("/v1/cluster").await.json();
        let gone = c["nodes"].as_array()?.iter().all(|n| n["id"] != victim || n["role"] == "learner");
        gone.then_some(())
    })
    .await;

    // No lognode left: not ready (503 + Retry-After), writes 503 too.
    for p in &mut cluster.procs {
        p.kill9();
    }
    let r = wait_for("readyz to turn 503", Duration::from_secs(30), || async {
        let r = gw.get("/readyz").await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert!(r.header("retry-after").is_some(), "{r:?}");
    let w = gw.post("/v1/topics", &json!({"name": "late", "partitions": 1})).await;
    assert_eq!(w.status, 503, "{}", String::from_utf8_lossy(&w.body));
    assert!(w.header("retry-after").is_some());
    gw.get("/healthz").await.expect(200, "healthz stays up");
    gw.backend.shutdown().await;
}

/// Whether lognode `grpc` sees the gateway member listening on `listen` alive (`None`: not listed).
async fn gateway_member_alive(grpc: &str, listen: &str) -> Option<bool> {
    let mut c = LedgerClient::connect(format!("http://{grpc}")).await.ok()?;
    let s = c.cluster_status(ClusterStatusRequest { local_only: false }).await.ok()?.into_inner();
    s.nodes.iter().find(|n| n.kind == "gateway" && n.grpc_addr == listen).map(|n| n.alive)
}

async fn real_binary_joins_serves_and_leaves(cluster: &Cluster) {
    let mut gw = GatewayProc::start_join(&cluster.procs[1].gossip);
    wait_for("the gateway binary to be ready", Duration::from_secs(20), || async {
        let r = crate::support::try_request(gw.addr, "GET", "/readyz").await?;
        (r.status == 200).then_some(())
    })
    .await;
    let list = crate::support::request(gw.addr, "GET", "/v1/topics", None).await.expect(200, "binary: topics");
    assert!(list.json()["topics"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "orders")));
    let grpc = cluster.procs[0].grpc.clone();
    let listen = gw.addr.to_string();
    wait_for("lognodes to see the gateway member", Duration::from_secs(30), || async {
        gateway_member_alive(&grpc, &listen).await.filter(|a| *a)
    })
    .await;
    assert!(gw.terminate(), "the gateway binary did not exit cleanly on SIGTERM:\n{}", gw.log());
    // A graceful leave is usually seen within a second; under a loaded CI machine memberlist can
    // fall back to its failure detector (suspicion timeouts), hence the wider bound.
    wait_for("the gateway member to leave the gossip", Duration::from_secs(30), || async {
        match gateway_member_alive(&grpc, &listen).await {
            Some(true) => None,
            _ => Some(()),
        }
    })
    .await;
}

/// Topics a cluster holds at most (lognode's `TOPICS_MAX`, the built-in `ledger` topic included).
const TOPICS_MAX: usize = 1024;

/// Creating topics without end: past `TOPICS_MAX` the gateway answers 422 `limit_exceeded`
/// problem+json naming the limit (not a 400, and not retried as a transient failure), nothing is
/// created, and the cluster keeps serving. One node, so the 1,023 creates take seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_past_the_cap_answer_422_limit_exceeded() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::builder().nodes(1).start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 1, Duration::from_secs(30)).await;
    let started = std::time::Instant::now();
    // `ledger` exists already: TOPICS_MAX - 1 more fit.
    for i in 0..TOPICS_MAX - 1 {
        gw.post("/v1/topics", &json!({"name": format!("t{i:04}"), "partitions": 1})).await.expect(201, "create");
    }
    let r = gw.post("/v1/topics", &json!({"name": "one-too-many", "partitions": 1})).await;
    let r = r.expect(422, "the topic past the cap");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = r.json();
    assert_eq!(body["code"], "limit_exceeded", "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("TOPICS_MAX") && d.contains("1024")), "{body}");
    let list = gw.get("/v1/topics?consistency=strong").await.expect(200, "list").json();
    let topics = list["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), TOPICS_MAX, "nothing created past the cap");
    assert!(topics.iter().all(|t| t["name"] != "one-too-many"), "{list}");
    // The cluster keeps serving writes of other kinds.
    gw.post("/v1/topics/t0000/records", &json!({"records": [{"value": {"n": 1}}]})).await.expect(200, "produce");
    eprintln!("{} topics created in {:?}", TOPICS_MAX - 1, started.elapsed());
}

/// Assignments in a join or heartbeat answer, as (topic, partition).
fn assigned(v: &serde_json::Value) -> Vec<(String, u64)> {
    let a = v["assignments"].as_array().expect("assignments");
    a.iter().map(|a| (a["topic"].as_str().expect("topic").to_owned(), a["partition"].as_u64().expect("p"))).collect()
}

/// Deleting a topic (issue 21): admin only; 204; gone from the list, produce and fetch answer 404;
/// a group subscribed to it loses its partitions (new generation) and forgets its committed
/// offsets; the name can be created again with another partition count, from offset 0, and the
/// group's member gets the new partitions; `ledger` and unknown topics are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_topic_frees_its_name_and_groups_forget_it() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::builder().nodes(1).start();
    let gw = gateway_static(cluster.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 1, Duration::from_secs(30)).await;

    gw.post("/v1/topics", &json!({"name": "gone", "partitions": 2})).await.expect(201, "create");
    let records = json!({"records": [{"key": "a", "value": {"n": 1}}, {"key": "a", "value": {"n": 2}}]});
    let p = gw.post("/v1/topics/gone/records", &records).await.expect(200, "produce").json()["offsets"][0]["partition"]
        .as_u64()
        .expect("partition");
    let body = json!({"topics": ["gone"], "auto_offset_reset": "earliest", "session_timeout_ms": 60000});
    let j = gw.post("/v1/groups/g/members", &body).await.expect(201, "join").json();
    let member = j["member_id"].as_str().expect("member").to_owned();
    let generation = j["generation"].as_u64().expect("generation");
    assert_eq!(assigned(&j).len(), 2, "{j}");
    let commit = json!({"generation": generation, "offsets": [{"topic": "gone", "partition": p, "offset": 2}]});
    gw.post(&format!("/v1/groups/g/members/{member}/offsets"), &commit).await.expect(204, "commit");

    // Admin only.
    let r = crate::support::request_raw(gw.addr, "DELETE", "/v1/topics/gone", b"").await;
    assert_eq!(r.expect(401, "no token").json()["code"], "unauthorized");
    // Refusals.
    assert_eq!(gw.delete("/v1/topics/ledger").await.expect(409, "ledger").json()["code"], "topic_protected");
    assert_eq!(gw.delete("/v1/topics/nope").await.expect(404, "unknown").json()["code"], "topic_not_found");

    let d = gw.delete("/v1/topics/gone").await.expect(204, "delete");
    assert!(d.index() > 0, "Ledger-Index of the deletion");
    let list = gw.get("/v1/topics?consistency=strong").await.expect(200, "list").json();
    assert!(list["topics"].as_array().expect("topics").iter().all(|t| t["name"] != "gone"), "{list}");
    gw.post("/v1/topics/gone/records", &records).await.expect(404, "produce to a deleted topic");
    gw.get("/v1/topics/gone/partitions/0/records").await.expect(404, "fetch from a deleted topic");
    assert_eq!(gw.delete("/v1/topics/gone").await.expect(404, "again").json()["code"], "topic_not_found");

    // The group's member lost the partitions, and the group forgot its offsets.
    let hb = gw.post(&format!("/v1/groups/g/members/{member}/heartbeat"), &json!({})).await.expect(200, "hb").json();
    assert!(hb["generation"].as_u64().expect("generation") > generation, "a new generation: {hb}");
    assert!(assigned(&hb).is_empty(), "no partitions of a deleted topic: {hb}");
    let desc = gw.get("/v1/groups/g").await.expect(200, "describe").json();
    assert!(desc["partitions"].as_array().expect("partitions").is_empty(), "nothing committed is left: {desc}");

    // The name again, with 3 partitions: empty, from offset 0; the member gets its partitions.
    gw.post("/v1/topics", &json!({"name": "gone", "partitions": 3})).await.expect(201, "re-create");
    let f = gw.get(&format!("/v1/topics/gone/partitions/{p}/records?consistency=strong")).await.expect(200, "fetch");
    let f = f.json();
    assert!(f["records"].as_array().expect("records").is_empty(), "no old records: {f}");
    assert_eq!(f["end_offset"], 0, "{f}");
    let hb = gw.post(&format!("/v1/groups/g/members/{member}/heartbeat"), &json!({})).await.expect(200, "hb").json();
    assert_eq!(assigned(&hb).len(), 3, "the re-created topic's partitions: {hb}");
    drop(cluster);
}
