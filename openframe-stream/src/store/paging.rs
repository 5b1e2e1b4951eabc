//! Keyset paging shared by every backend: the sort key, cursors and page assembly.
//!
//! Lists are sorted by [`EventKey`] descending. A page fetches `limit + 1` rows beyond its
//! cursor in its walking direction (descending for `first/after`, ascending for
//! `last/before`) to know exactly whether more follow, and probes once for a row at or
//! behind the cursor to know exactly whether any precede.

use openframe_core::{
    Cursor, Edge, Error, Page, PageDirection, PageInfo, PageRequest, Result, SortDirection,
};
use uuid::Uuid;

use crate::model::UnifiedEvent;

/// The sort name recorded in event cursors; cursors of other sorts are refused.
pub const SORT_NAME: &str = "occurredAt";

/// The position of an event in the sort: `occurred_at` in microseconds, then the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EventKey {
    /// `occurred_at`, microseconds since the epoch.
    pub(crate) micros: i64,
    /// The event id (ordered like its lower-case hyphenated text).
    pub(crate) id: Uuid,
}

impl EventKey {
    /// The key of `event`.
    pub(crate) fn of(event: &UnifiedEvent) -> Self {
        Self {
            micros: event.occurred_at.timestamp_micros(),
            id: event.id,
        }
    }

    fn cursor(self) -> String {
        Cursor {
            sort: SORT_NAME.to_owned(),
            direction: SortDirection::Desc,
            key: self.micros.into(),
            id: self.id.hyphenated().to_string(),
        }
        .encode()
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PagePlan {
    /// Rows on the page.
    pub(crate) limit: usize,
    /// `last/before`: walk ascending from the cursor, then flip.
    pub(crate) backward: bool,
    /// Exclusive start.
    pub(crate) cursor: Option<EventKey>,
}

impl PagePlan {
    /// Validates `page` (sizes 1..=100, a cursor of this sort with a valid key and id).
    pub(crate) fn new(page: &PageRequest) -> Result<Self> {
        let window = page.window(SORT_NAME, SortDirection::Desc)?;
        let backward = window.direction == PageDirection::Backward;
        let field = if backward { "before" } else { "after" };
        let cursor = window
            .cursor
            .map(|c| {
                let bad = || Error::invalid(field, "malformed cursor");
                let micros = c.key.as_i64().ok_or_else(bad)?;
                let id = Uuid::try_parse(&c.id).map_err(|_| bad())?;
                Ok::<_, Error>(EventKey { micros, id })
            })
            .transpose()?;
        Ok(Self {
            limit: window.limit,
            backward,
            cursor,
        })
    }

    /// How many rows to fetch beyond the cursor.
    pub(crate) fn fetch(&self) -> usize {
        self.limit + 1
    }

    /// Builds the page from up to `limit + 1` rows fetched beyond the cursor in walking order,
    /// and whether the probe found a row behind the cursor.
    pub(crate) fn assemble(&self, mut rows: Vec<UnifiedEvent>, behind: bool) -> Page<UnifiedEvent> {
        let more_ahead = rows.len() > self.limit;
        rows.truncate(self.limit);
        if self.backward {
            rows.reverse();
        }
        let behind = behind && self.cursor.is_some();
        let (has_next_page, has_previous_page) = if self.backward {
            (behind, more_ahead)
        } else {
            (more_ahead, behind)
        };
        let edges: Vec<Edge<UnifiedEvent>> = rows
            .into_iter()
            .map(|node| Edge {
                cursor: EventKey::of(&node).cursor(),
                node,
            })
            .collect();
        Page {
            page_info: PageInfo {
                has_next_page,
                has_previous_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(micros: i64, id: u128) -> EventKey {
        EventKey {
            micros,
            id: Uuid::from_u128(id),
        }
    }

    #[test]
    fn uuid_order_matches_hyphenated_text_order() {
        let mut ids: Vec<Uuid> = (0..200u128)
            .map(|i| Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        let mut texts: Vec<String> = ids.iter().map(|u| u.hyphenated().to_string()).collect();
        ids.sort();
        texts.sort();
        let sorted: Vec<String> = ids.iter().map(|u| u.hyphenated().to_string()).collect();
        assert_eq!(sorted, texts);
    }

    #[test]
    fn cursor_round_trips_through_a_request() {
        let k = key(1_700_000_000_123_456, 42);
        let plan = PagePlan::new(&PageRequest::first(10).after(k.cursor())).unwrap();
        assert_eq!(
            (plan.cursor, plan.backward, plan.limit),
            (Some(k), false, 10)
        );
        let plan = PagePlan::new(&PageRequest::last(7).before(k.cursor())).unwrap();
        assert_eq!((plan.cursor, plan.backward, plan.limit), (Some(k), true, 7));
        // A malformed cursor names the argument it came in.
        let err = PagePlan::new(&PageRequest::first(7).after("x")).unwrap_err();
        assert_eq!(err.field(), Some("after"));
    }

    #[test]
    fn cursors_with_bad_keys_or_ids_are_refused() {
        let bad_key = Cursor {
            sort: SORT_NAME.into(),
            direction: SortDirection::Desc,
            key: "yesterday".into(),
            id: Uuid::nil().to_string(),
        };
        let bad_id = Cursor {
            key: 5.into(),
            id: "not-a-uuid".into(),
            ..bad_key.clone()
        };
        for c in [bad_key, bad_id] {
            let err = PagePlan::new(&PageRequest::first(5).after(c.encode())).unwrap_err();
            assert_eq!(err.field(), Some("after"));
        }
    }
}
