//! Which offsets may be committed: per partition, only up to the first record not finished.

use std::collections::{BTreeMap, VecDeque};

use crate::bus::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Done,
    /// Could not be finished (e.g. the dead-letter topic refused it): never committed, so the
    /// partition's commits stop before it and the group gets it again.
    Abandoned,
}

#[derive(Debug, Default)]
struct Track {
    /// Delivered, uncommitted offsets in delivery (= offset) order.
    pending: VecDeque<(u64, State)>,
    /// The highest offset that may be committed and was not yet.
    commit: Option<u64>,
}

/// Tracks delivered records per `(topic, partition)` until they may be committed.
#[derive(Debug, Default)]
pub(crate) struct CommitTracker {
    tracks: BTreeMap<(String, u32), Track>,
}

impl CommitTracker {
    /// Records a delivery. A delivery at or before an offset already pending is a rewind (the
    /// partition came back after a rebalance, or the broker redelivers after a restart): the
    /// entries from that offset on are replaced by the new deliveries, so the pending list stays
    /// in offset order and no stale entry can hold the partition's commits forever. A copy
    /// still running from before finishes the new entry of its offset: it was processed (or
    /// abandoned) all the same.
    pub(crate) fn delivered(&mut self, topic: &str, position: Position) {
        let track = self
            .tracks
            .entry((topic.to_owned(), position.partition))
            .or_default();
        if track
            .pending
            .back()
            .is_some_and(|(offset, _)| *offset >= position.offset)
        {
            let keep = track.pending.partition_point(|(o, _)| *o < position.offset);
            track.pending.truncate(keep);
        }
        track.pending.push_back((position.offset, State::Running));
    }

    /// Marks a delivered record finished (`ok`) or abandoned.
    pub(crate) fn finished(&mut self, topic: &str, position: Position, ok: bool) {
        let Some(track) = self.tracks.get_mut(&(topic.to_owned(), position.partition)) else {
            return; // the partition was revoked meanwhile
        };
        let index = track.pending.partition_point(|(o, _)| *o < position.offset);
        if let Some(entry) = track.pending.get_mut(index) {
            if entry.0 == position.offset {
                entry.1 = if ok { State::Done } else { State::Abandoned };
            }
        }
        while let Some((offset, State::Done)) = track.pending.front().copied() {
            track.pending.pop_front();
            track.commit = Some(offset);
        }
    }

    /// The positions to commit now, grouped by topic.
    pub(crate) fn commits(&self) -> BTreeMap<String, Vec<Position>> {
        let mut out: BTreeMap<String, Vec<Position>> = BTreeMap::new();
        for ((topic, partition), track) in &self.tracks {
            if let Some(offset) = track.commit {
                out.entry(topic.clone())
                    .or_default()
                    .push(Position::new(*partition, offset));
            }
        }
        out
    }

    /// Notes a successful commit of `positions` of `topic`.
    pub(crate) fn committed(&mut self, topic: &str, positions: &[Position]) {
        for p in positions {
            if let Some(track) = self.tracks.get_mut(&(topic.to_owned(), p.partition)) {
                if track.commit == Some(p.offset) {
                    track.commit = None;
                }
            }
        }
    }

    /// Forgets a topic's partitions that moved to another consumer (their uncommitted records
    /// go to the new owner).
    pub(crate) fn forget(&mut self, topic: &str, positions: &[Position]) {
        for p in positions {
            self.tracks.remove(&(topic.to_owned(), p.partition));
        }
    }

    /// Delivered and not yet committed records (what the consumer counts against its
    /// `max_in_flight`).
    pub(crate) fn uncommitted(&self) -> usize {
        self.tracks
            .values()
            .map(|t| t.pending.len() + usize::from(t.commit.is_some()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_contiguous_finished_offsets() {
        let mut t = CommitTracker::default();
        for o in 0..4 {
            t.delivered("a", Position::new(0, o));
        }
        t.delivered("a", Position::new(1, 7));
        t.finished("a", Position::new(0, 1), true);
        t.finished("a", Position::new(0, 2), true);
        assert!(t.commits().is_empty(), "offset 0 is still running");
        t.finished("a", Position::new(0, 0), true);
        assert_eq!(t.commits()["a"], vec![Position::new(0, 2)]);
        t.committed("a", &[Position::new(0, 2)]);
        assert!(t.commits().is_empty());
        // An abandoned record blocks its partition only.
        t.finished("a", Position::new(0, 3), false);
        t.finished("a", Position::new(1, 7), true);
        assert_eq!(t.commits()["a"], vec![Position::new(1, 7)]);
        assert_eq!(t.uncommitted(), 2);
        t.committed("a", &[Position::new(1, 7)]);
        assert_eq!(t.uncommitted(), 1);
        t.forget("a", &[Position::new(0, 0)]);
        assert_eq!(t.uncommitted(), 0);
    }

    #[test]
    fn a_rewound_partition_keeps_offset_order_and_commits_again() {
        let mut t = CommitTracker::default();
        for o in 0..5 {
            t.delivered("a", Position::new(0, o));
        }
        t.finished("a", Position::new(0, 0), true);
        // The partition is redelivered from offset 2 while 1..=4 are still running.
        for o in 2..5 {
            t.delivered("a", Position::new(0, o));
        }
        assert_eq!(t.uncommitted(), 5, "0 committable, 1..=4 pending once each");
        // The old copies finish, then the new ones: every offset ends up committable.
        for o in 1..5 {
            t.finished("a", Position::new(0, o), true);
        }
        assert_eq!(t.commits()["a"], vec![Position::new(0, 4)]);
        for o in 2..5 {
            t.finished("a", Position::new(0, o), true);
        }
        assert_eq!(t.commits()["a"], vec![Position::new(0, 4)]);
        t.committed("a", &[Position::new(0, 4)]);
        assert_eq!(t.uncommitted(), 0);
    }
}
