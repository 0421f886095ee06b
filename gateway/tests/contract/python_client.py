"""Drives the Python client generated from openapi/ledger.v1.json (openapi-python-client)
against a real cluster. Run by gateway/tests/cluster/contract.rs:

    PYTHONPATH=<dir holding ledger_client> python3 python_client.py <base-url> <admin-token>

Every step asserts; the first failure exits non-zero with a message.
"""

import sys
import uuid

from ledger_client import AuthenticatedClient
from ledger_client.api.accounts import create_account, get_account
from ledger_client.api.cluster import get_cluster
from ledger_client.api.groups import commit_offsets, fetch_group_records, join_group, leave_group
from ledger_client.api.topics import create_topic, fetch_records, produce_records
from ledger_client.api.transfers import (
    create_transfer,
    create_transfers,
    get_transfer,
    post_pending_transfer,
    void_pending_transfer,
)
from ledger_client.models import (
    AutoOffsetResetBody,
    CommitOffset,
    CommitOffsetsRequest,
    Consistency,
    CreateAccountRequest,
    CreateTopicRequest,
    CreateTransferRequest,
    CreateTransfersRequest,
    JoinGroupRequest,
    PostPendingRequest,
    Problem,
    ProduceRecord,
    ProduceRequest,
)

base_url, token = sys.argv[1], sys.argv[2]
run = uuid.uuid4().hex[:8]
# Writes without a body (void, heartbeat, leave, remove) must still say it is JSON.
client = AuthenticatedClient(base_url=base_url, token=token, headers={"Content-Type": "application/json"})


def expect(resp, status, what):
    if resp.status_code != status:
        raise AssertionError(f"{what}: status {resp.status_code} (want {status}): {resp.content!r}")
    return resp.parsed


def problem(resp, status, code, what):
    parsed = expect(resp, status, what)
    if not isinstance(parsed, Problem) or parsed.code.value != code:
        raise AssertionError(f"{what}: want problem {code}, got {resp.content!r}")
    return parsed


def tid(name):
    return f"{name}-{run}"


# Accounts.
for acct, overdraft in [("equity", True), ("alice", False), ("bob", False)]:
    body = CreateAccountRequest(id=tid(acct), currency="USD", allow_overdraft=overdraft)
    expect(create_account.sync_detailed(client=client, body=body), 201, f"create {acct}")

# A transfer, its identical replay, a conflicting replay.
t1 = CreateTransferRequest(id=tid("t1"), debit_account_id=tid("equity"), credit_account_id=tid("alice"), amount=1000, currency="USD")
created = expect(create_transfer.sync_detailed(client=client, body=t1), 201, "transfer")
replay = create_transfer.sync_detailed(client=client, body=t1)
expect(replay, 200, "identical replay")
assert replay.headers.get("idempotent-replayed") == "true", replay.headers
conflict = CreateTransferRequest(id=tid("t1"), debit_account_id=tid("equity"), credit_account_id=tid("alice"), amount=999, currency="USD")
problem(create_transfer.sync_detailed(client=client, body=conflict), 409, "id_conflict", "conflicting replay")

# An overdraft.
over = CreateTransferRequest(id=tid("over"), debit_account_id=tid("alice"), credit_account_id=tid("bob"), amount=10**9, currency="USD")
p = problem(create_transfer.sync_detailed(client=client, body=over), 422, "insufficient_funds", "overdraft")
assert p.retryable is False, p

# Two-phase: one posted (partially), one voided.
for name in ["p1", "p2"]:
    body = CreateTransferRequest(id=tid(name), debit_account_id=tid("alice"), credit_account_id=tid("bob"), amount=100, currency="USD", pending=True)
    expect(create_transfer.sync_detailed(client=client, body=body), 201, f"pending {name}")
posted = expect(post_pending_transfer.sync_detailed(tid("p1"), client=client, body=PostPendingRequest(amount=60)), 200, "post")
assert posted.status.value == "posted", posted
voided = expect(void_pending_transfer.sync_detailed(tid("p2"), client=client), 200, "void")
assert voided.status.value == "voided", voided
t = expect(get_transfer.sync_detailed(tid("p2"), client=client, consistency=Consistency.STRONG), 200, "get voided")
assert t.status.value == "voided", t

# A batch.
items = [
    CreateTransferRequest(id=tid(f"b{i}"), debit_account_id=tid("equity"), credit_account_id=tid("bob"), amount=5, currency="USD")
    for i in range(3)
]
batch = expect(create_transfers.sync_detailed(client=client, body=CreateTransfersRequest(transfers=items, atomic=True)), 200, "batch")
assert [r.to_dict()["result"] for r in batch.results] == ["created"] * 3, batch

# Read your writes: balances after everything above.
write_index = int(batch.index)
bob = expect(get_account.sync_detailed(tid("bob"), client=client, min_index=write_index), 200, "bob")
assert bob.balance == 60 + 15, bob
alice = expect(get_account.sync_detailed(tid("alice"), client=client, consistency=Consistency.STRONG), 200, "alice")
assert alice.balance == 1000 - 60, alice

# Produce and fetch records (any JSON value).
topic = tid("events")
expect(create_topic.sync_detailed(client=client, body=CreateTopicRequest(name=topic, partitions=1)), 201, "topic")
records = [ProduceRecord(key="k1", value={"n": 1}), ProduceRecord(key="k2", value=[1, "two"]), ProduceRecord(value="text")]
produced = expect(produce_records.sync_detailed(topic, client=client, body=ProduceRequest(records=records)), 200, "produce")
assert sorted(o.offset for o in produced.offsets) == [0, 1, 2], produced
fetched = expect(fetch_records.sync_detailed(topic, 0, client=client, min_index=int(produced.index)), 200, "fetch")
by_offset = {r.offset: r.value for r in fetched.records}
assert [by_offset[o.offset] for o in produced.offsets] == [{"n": 1}, [1, "two"], "text"], fetched

# A consumer group: join, fetch, commit, leave.
group = tid("g")
joined = expect(join_group.sync_detailed(group, client=client, body=JoinGroupRequest(topics=[topic], auto_offset_reset=AutoOffsetResetBody.EARLIEST)), 201, "join")
got = expect(fetch_group_records.sync_detailed(group, joined.member_id, client=client, wait_ms=2000), 200, "group fetch")
assert [r.offset for r in got.records] == [0, 1, 2], got
commit = CommitOffsetsRequest(generation=joined.generation, offsets=[CommitOffset(topic=topic, partition=0, offset=3)])
expect(commit_offsets.sync_detailed(group, joined.member_id, client=client, body=commit), 204, "commit")
expect(leave_group.sync_detailed(group, joined.member_id, client=client), 204, "leave")

# The cluster view.
cluster = expect(get_cluster.sync_detailed(client=client), 200, "cluster")
assert cluster.leader_id is not None and len(cluster.nodes) >= 3, cluster

print("python client: every step passed")
