//! How topics, partitions and groups map onto JetStream streams, subjects and consumers.

/// The stream of topic `full` (prefix included): `.` cannot appear in a stream name, so `_`
/// is written `__` and `.` is written `_D` (an injective mapping).
pub(super) fn stream_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len() + 4);
    for c in full.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_D"),
            c => out.push(c),
        }
    }
    out
}

/// The subject of one partition: `<topic>.<partition>`.
pub(super) fn subject(full: &str, partition: u32) -> String {
    format!("{full}.{partition}")
}

/// The subjects of a topic with `partitions` partitions, in partition order.
pub(super) fn subjects(full: &str, partitions: u32) -> Vec<String> {
    (0..partitions).map(|p| subject(full, p)).collect()
}

/// The partition count a stream's subjects describe, if they are exactly `<topic>.0` to
/// `<topic>.<n-1>`.
pub(super) fn partitions_of(full: &str, stream_subjects: &[String]) -> Option<u32> {
    let n = u32::try_from(stream_subjects.len()).ok()?;
    (n > 0 && stream_subjects.iter().eq(subjects(full, n).iter())).then_some(n)
}

/// The prefix of every durable consumer name of `group` on `partition`: the group's length
/// first, so no other group's names share it (`-` and `_` may appear in group names).
pub(super) fn durable_prefix(group: &str, partition: u32) -> String {
    format!("{}_{group}_{partition}_", group.len())
}

/// The subject a group's members announce themselves on.
pub(super) fn group_subject(prefix: &str, group: &str) -> String {
    let scope = if prefix.is_empty() {
        "_".to_owned()
    } else {
        stream_name(prefix)
    };
    format!("_OPENFRAME.groups.{scope}.{group}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_injective_and_valid() {
        assert_eq!(stream_name("logs.events"), "logs_Devents");
        assert_ne!(stream_name("a_D"), stream_name("a.")); // "a__D" vs "a_D"
        assert_ne!(stream_name("a.b"), stream_name("a_Db"));
        assert!(!stream_name("a.b.c").contains('.'));
        assert_eq!(subject("t", 3), "t.3");
        assert_eq!(partitions_of("t", &subjects("t", 4)), Some(4));
        assert_eq!(partitions_of("t", &["t.>".to_owned()]), None);
        assert_ne!(durable_prefix("a_1", 2), durable_prefix("a", 1));
        assert!(!durable_prefix("a_1", 2).starts_with(&durable_prefix("a", 1)));
    }
}
