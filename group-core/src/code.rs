//! Result codes: every decision of the group coordinator is one of these,
//! never a panic (rule 12).

use serde::{Deserialize, Serialize};

macro_rules! group_codes {
    ($( $(#[$doc:meta])* $variant:ident => $s:literal, )*) => {
        /// The result of one group command or query.
        ///
        /// Each code has a stable snake_case string (`as_str`) that the HTTP
        /// API exposes; never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum GroupCode {
            $( $(#[$doc])* $variant, )*
        }

        impl GroupCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [GroupCode] = &[ $( GroupCode::$variant, )* ];

            /// The stable snake_case string of this code.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( GroupCode::$variant => $s, )*
                }
            }

            /// Parses the string produced by [`GroupCode::as_str`].
            pub fn parse(s: &str) -> Option<GroupCode> {
                match s {
                    $( $s => Some(GroupCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

group_codes! {
    /// The command was applied (or the query answered).
    Ok => "ok",
    /// The group id is empty, too long or has a character outside
    /// `[A-Za-z0-9._-]` (HTTP 400).
    InvalidGroupId => "invalid_group_id",
    /// Malformed request: no topics, a topic name that is empty or too long,
    /// the same partition twice in one commit, resolved timestamp offsets
    /// that do not match the reset's partitions (HTTP 400).
    InvalidRequest => "invalid_request",
    /// The session timeout is outside `SESSION_TIMEOUT_MS_MIN..=MAX` (HTTP 400).
    InvalidSessionTimeout => "invalid_session_timeout",
    /// The group does not exist (HTTP 404).
    UnknownGroup => "unknown_group",
    /// The member is not (or no longer) in the group: it left, expired or
    /// never joined (HTTP 404; the client joins again).
    UnknownMember => "unknown_member",
    /// The topic does not exist in the catalog (HTTP 404).
    UnknownTopic => "unknown_topic",
    /// The topic exists but has no such partition (HTTP 404).
    UnknownPartition => "unknown_partition",
    /// The commit names a generation other than the group's current one
    /// (HTTP 409; the client heartbeats to learn the new one).
    StaleGeneration => "stale_generation",
    /// The member does not own the partition in the current generation
    /// (HTTP 409).
    NotOwner => "not_owner",
    /// The offset is past the partition's end offset (HTTP 400).
    OffsetOutOfRange => "offset_out_of_range",
    /// The offset is below the group's committed offset; only an explicit
    /// reset moves it back (HTTP 409).
    OffsetRegression => "offset_regression",
    /// Offsets can only be reset while the group has no members (HTTP 409).
    GroupNotEmpty => "group_not_empty",
    /// A capacity limit (groups, members, topics, partitions, offsets per
    /// commit) is reached (HTTP 429/400).
    LimitExceeded => "limit_exceeded",
}

impl GroupCode {
    /// True only for `ok`.
    pub const fn is_ok(self) -> bool {
        matches!(self, GroupCode::Ok)
    }
}

impl std::fmt::Display for GroupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupCode;

    /// Rule 12: every code has a distinct snake_case string that parses back.
    #[test]
    fn rule12_codes_roundtrip_and_are_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for &c in GroupCode::ALL {
            let s = c.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert!(seen.insert(s), "duplicate {s}");
            assert_eq!(GroupCode::parse(s), Some(c));
        }
        assert_eq!(GroupCode::parse("nope"), None);
    }
}
