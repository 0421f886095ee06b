//! The keyspaces' fjall options: which build bloom filters and what they pin in memory.

use fjall::KeyspaceCreateOptions;

use super::MEMTABLE_BYTES;

/// Options of every keyspace (fjall's defaults, with [`MEMTABLE_BYTES`] memtables): those of
/// `accounts`, `tails` and `meta`, which grow with accounts only.
pub(super) fn options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
}

/// Options of the keyspaces that grow with the ledger's history, `transfers`, `history`, `anchors`
/// and `expiry`: no bloom filters and nothing pinned in memory.
///
/// Their point reads always find their key (numbers that the store handed out) or are range
/// scans, which filters do not serve; and fjall keeps the filter and index
/// blocks of a table pinned for as long as the table lives when it was written to level 0 or 1.
/// A table of an append-only keyspace (`transfers`, `history`) is never merged, only moved down,
/// so with the defaults every table ever written kept its filter in memory: about 7 B per
/// transfer, the RSS creep of issue 20's 30M-transfer run (`--bench state_store`: 56 MB pinned at
/// 8M transfers). Unpinned, index blocks go through the block cache like data blocks. `ids` has
/// options of its own ([`ids_options`]); `accounts` and `tails` grow with accounts only and keep
/// fjall's defaults.
pub(super) fn unfiltered() -> KeyspaceCreateOptions {
    use fjall::config::{FilterPolicy, PinningPolicy};
    options()
        .filter_policy(FilterPolicy::disabled())
        .filter_block_pinning_policy(PinningPolicy::disabled())
        .index_block_pinning_policy(PinningPolicy::disabled())
}

/// Options of `ids`: bloom filters, since its lookups mostly miss (a new transfer id), but split
/// into partitions that go through the block cache, and nothing pinned. Scattered client ids
/// make its tables merge, so fjall's default (level-0 filters pinned) stayed bounded with them;
/// time-ordered ids (ULIDs, UUIDv7) make it append, its tables are then moved down like those
/// of `transfers`, and every pinned filter stayed (10 MB at 20M transfers in the cluster).
pub(super) fn ids_options() -> KeyspaceCreateOptions {
    use fjall::config::{PartitioningPolicy, PinningPolicy};
    options()
        .filter_block_partitioning_policy(PartitioningPolicy::all(true))
        .filter_block_pinning_policy(PinningPolicy::disabled())
        .index_block_pinning_policy(PinningPolicy::disabled())
}
