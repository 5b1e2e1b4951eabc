//! Pure translations for the MongoDB event store: events to documents, filters, keysets,
//! facet and histogram pipelines to BSON. No I/O, so every rule is unit-tested here.

use bson::{Bson, Document, Regex, doc};
use openframe_core::{Result, TenantId};

use crate::model::UnifiedEvent;
use crate::store::paging::EventKey;
use crate::store::{
    EventFacet, EventFilter, EventGroup, MAX_FACET_VALUES, facet_value, names, search_text,
};

/// Field names of a stored event document.
pub(super) mod field {
    /// `"{tenant}:{event id}"`: one document per tenant and id.
    pub(crate) const KEY: &str = "_id";
    pub(crate) const TENANT: &str = "tenant";
    /// The event id, lower-case hyphenated (sorts like the id).
    pub(crate) const ID: &str = "id";
    /// `occurred_at` in microseconds (Int64): the sort and range key.
    pub(crate) const TIME: &str = "t";
    /// `occurred_at` as a BSON date: the TTL index's field.
    pub(crate) const AT: &str = "at";
    pub(crate) const MACHINE: &str = "machine";
    pub(crate) const ORGANIZATION: &str = "org";
    pub(crate) const EVENT_TYPE: &str = "type";
    pub(crate) const SEVERITY: &str = "sev";
    pub(crate) const TOOL: &str = "tool";
    pub(crate) const CATEGORY: &str = "cat";
    /// Lower-cased search text.
    pub(crate) const SEARCH: &str = "s";
    /// The event as JSON text (exact round trip, including u64 numbers in details).
    pub(crate) const BODY: &str = "b";
}

/// The stored key of an event.
pub(super) fn key(tenant: &TenantId, id: &uuid::Uuid) -> String {
    format!("{}:{}", tenant.as_str(), id.hyphenated())
}

/// The field holding a facet's value.
pub(super) fn facet_field(facet: EventFacet) -> &'static str {
    match facet {
        EventFacet::EventType => field::EVENT_TYPE,
        EventFacet::Severity => field::SEVERITY,
        EventFacet::Tool => field::TOOL,
        EventFacet::Category => field::CATEGORY,
        EventFacet::MachineId => field::MACHINE,
        EventFacet::OrganizationId => field::ORGANIZATION,
    }
}

/// The document stored for `event` of `tenant`.
pub(super) fn event_doc(tenant: &TenantId, event: &UnifiedEvent) -> Result<Document> {
    let body =
        serde_json::to_string(event).map_err(|e| openframe_core::Error::backend("mongodb", e))?;
    let opt = |v: Option<String>| v.map_or(Bson::Null, Bson::String);
    Ok(doc! {
        field::KEY: key(tenant, &event.id),
        field::TENANT: tenant.as_str(),
        field::ID: event.id.hyphenated().to_string(),
        field::TIME: event.occurred_at.timestamp_micros(),
        field::AT: bson::DateTime::from_millis(event.occurred_at.timestamp_millis()),
        field::MACHINE: opt(facet_value(event, EventFacet::MachineId)),
        field::ORGANIZATION: opt(facet_value(event, EventFacet::OrganizationId)),
        field::EVENT_TYPE: event.event_type.as_str(),
        field::SEVERITY: names::severity(event.severity),
        field::TOOL: event.tool.as_str(),
        field::CATEGORY: names::category(event.category),
        field::SEARCH: search_text(event),
        field::BODY: body,
    })
}

/// Escapes every ASCII punctuation character, so the pattern matches `text` literally.
pub(super) fn literal_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn any_of(d: &mut Document, name: &str, values: Vec<String>) {
    match values.len() {
        0 => {}
        1 => {
            d.insert(name, values.into_iter().next().unwrap_or_default());
        }
        _ => {
            d.insert(name, doc! { "$in": values });
        }
    }
}

/// The tenant's documents matching `filter` (which must be validated).
pub(super) fn filter_doc(tenant: &TenantId, filter: &EventFilter) -> Document {
    let mut d = doc! { field::TENANT: tenant.as_str() };
    let mut time = Document::new();
    if let Some(from) = filter.start_micros() {
        time.insert("$gte", from);
    }
    if let Some(to) = filter.end_micros() {
        time.insert("$lt", to);
    }
    if !time.is_empty() {
        d.insert(field::TIME, time);
    }
    any_of(
        &mut d,
        field::MACHINE,
        filter
            .machine_ids
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect(),
    );
    any_of(
        &mut d,
        field::ORGANIZATION,
        filter
            .organization_ids
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
    );
    any_of(&mut d, field::EVENT_TYPE, filter.event_types.clone());
    any_of(
        &mut d,
        field::SEVERITY,
        filter
            .severities
            .iter()
            .map(|s| names::severity(*s).to_owned())
            .collect(),
    );
    any_of(
        &mut d,
        field::TOOL,
        filter.tools.iter().map(|t| t.as_str().to_owned()).collect(),
    );
    any_of(
        &mut d,
        field::CATEGORY,
        filter
            .categories
            .iter()
            .map(|c| names::category(*c))
            .collect(),
    );
    if let Some(needle) = filter.needle() {
        // Both sides are lower-cased, so no case-insensitive option is needed.
        d.insert(
            field::SEARCH,
            Bson::RegularExpression(Regex {
                pattern: literal_regex(&needle),
                options: String::new(),
            }),
        );
    }
    d
}

/// `base` restricted to `(t, id) <op> key`, `op` one of `<`, `<=`, `>`, `>=`.
pub(super) fn keyset(base: Document, op: &str, key: EventKey) -> Document {
    let (bound, strict, id_op) = match op {
        "<" => ("$lte", "$lt", "$lt"),
        "<=" => ("$lte", "$lt", "$lte"),
        ">" => ("$gte", "$gt", "$gt"),
        _ => ("$gte", "$gt", "$gte"),
    };
    let id = key.id.hyphenated().to_string();
    doc! {
        "$and": [
            base,
            // The plain bound lets the planner seek the (tenant, t, id) indexes.
            { field::TIME: { bound: key.micros } },
            { "$or": [
                { field::TIME: { strict: key.micros } },
                { field::ID: { id_op: id } },
            ] },
        ]
    }
}

/// The sort of a page walk: newest first, or oldest first when walking backward.
pub(super) fn sort_doc(backward: bool) -> Document {
    let dir = if backward { 1 } else { -1 };
    doc! { field::TIME: dir, field::ID: dir }
}

/// One aggregation over `filter` that counts every asked facet (`$facet`, one pass).
pub(super) fn facets_pipeline(filter: Document, facets: &[EventFacet]) -> Vec<Document> {
    let mut branches = Document::new();
    for (i, facet) in facets.iter().enumerate() {
        let f = facet_field(*facet);
        branches.insert(
            format!("f{i}"),
            vec![
                doc! { "$match": { f: { "$ne": Bson::Null } } },
                doc! { "$group": { "_id": format!("${f}"), "n": { "$sum": 1 } } },
                doc! { "$sort": { "n": -1, "_id": 1 } },
                doc! { "$limit": MAX_FACET_VALUES as i64 },
            ],
        );
    }
    vec![doc! { "$match": filter }, doc! { "$facet": branches }]
}

/// Counts per (bucket start, group value); buckets floor `t` to multiples of `width`.
pub(super) fn histogram_pipeline(filter: Document, width: i64, group: EventGroup) -> Vec<Document> {
    let g = facet_field(group.facet());
    let t = format!("${}", field::TIME);
    vec![
        doc! { "$match": filter },
        doc! { "$group": {
            "_id": {
                "b": { "$subtract": [&t, { "$mod": [{ "$add": [{ "$mod": [&t, width] }, width] }, width] }] },
                "g": format!("${g}"),
            },
            "n": { "$sum": 1 },
        } },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventCategory, Severity, ToolSource};
    use openframe_core::{MachineId, OrganizationId};
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn empty_filter_is_the_tenant_only() {
        assert_eq!(
            filter_doc(&tenant(), &EventFilter::default()),
            doc! { "tenant": "acme" }
        );
    }

    #[test]
    fn every_condition_translates() {
        let from = chrono::DateTime::from_timestamp(1_000, 5_000).unwrap();
        let to = chrono::DateTime::from_timestamp(2_000, 0).unwrap();
        let filter = EventFilter {
            from: Some(from),
            to: Some(to),
            machine_ids: vec![MachineId::parse("m1").unwrap()],
            organization_ids: vec![
                OrganizationId::parse("o1").unwrap(),
                OrganizationId::parse("o2").unwrap(),
            ],
            event_types: vec!["LOGIN".into()],
            severities: vec![Severity::Error, Severity::Critical],
            tools: vec![ToolSource::FleetMdm],
            categories: vec![EventCategory::RemoteAccess],
            text: Some("  100%_Done ".into()),
        };
        let want = doc! {
            "tenant": "acme",
            "t": { "$gte": 1_000_000_005_i64, "$lt": 2_000_000_000_i64 },
            "machine": "m1",
            "org": { "$in": ["o1", "o2"] },
            "type": "LOGIN",
            "sev": { "$in": ["ERROR", "CRITICAL"] },
            "tool": "FLEET_MDM",
            "cat": "REMOTE_ACCESS",
            "s": Bson::RegularExpression(Regex { pattern: "100\\%\\_done".into(), options: String::new() }),
        };
        assert_eq!(filter_doc(&tenant(), &filter), want);
    }

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(literal_regex("a.b*c"), "a\\.b\\*c");
        assert_eq!(
            literal_regex("(x|y)[z]{2}^$"),
            "\\(x\\|y\\)\\[z\\]\\{2\\}\\^\\$"
        );
        assert_eq!(literal_regex("back\\slash ?+"), "back\\\\slash\\ \\?\\+");
        assert_eq!(literal_regex("café"), "café");
    }

    #[test]
    fn keyset_bounds_time_then_breaks_ties_on_id() {
        let key = EventKey {
            micros: 42,
            id: Uuid::from_u128(7),
        };
        let id = key.id.hyphenated().to_string();
        let got = keyset(doc! { "tenant": "acme" }, "<", key);
        let want = doc! { "$and": [
            { "tenant": "acme" },
            { "t": { "$lte": 42_i64 } },
            { "$or": [ { "t": { "$lt": 42_i64 } }, { "id": { "$lt": &id } } ] },
        ] };
        assert_eq!(got, want);
        let got = keyset(doc! {}, ">=", key);
        let want = doc! { "$and": [
            {},
            { "t": { "$gte": 42_i64 } },
            { "$or": [ { "t": { "$gt": 42_i64 } }, { "id": { "$gte": &id } } ] },
        ] };
        assert_eq!(got, want);
        assert_eq!(sort_doc(false), doc! { "t": -1, "id": -1 });
        assert_eq!(sort_doc(true), doc! { "t": 1, "id": 1 });
    }

    #[test]
    fn facet_and_histogram_pipelines() {
        let p = facets_pipeline(doc! { "tenant": "acme" }, &[EventFacet::MachineId]);
        let want = vec![
            doc! { "$match": { "tenant": "acme" } },
            doc! { "$facet": { "f0": [
                { "$match": { "machine": { "$ne": Bson::Null } } },
                { "$group": { "_id": "$machine", "n": { "$sum": 1 } } },
                { "$sort": { "n": -1, "_id": 1 } },
                { "$limit": 100_i64 },
            ] } },
        ];
        assert_eq!(p, want);
        let p = histogram_pipeline(doc! {}, 60, EventGroup::Severity);
        let group = p[1].get_document("$group").unwrap();
        assert_eq!(
            group.get_document("_id").unwrap().get_str("g").unwrap(),
            "$sev"
        );
    }

    #[test]
    fn documents_carry_key_fields_and_body() {
        let table = crate::model::MappingTable::builtin();
        let at = chrono::DateTime::from_timestamp(5, 123_456_789).unwrap();
        let e = UnifiedEvent::new(
            &table,
            Uuid::from_u128(9),
            ToolSource::Meshcentral,
            "user.login",
            at,
            None,
        )
        .with_tenant(Some(tenant()));
        let d = event_doc(&tenant(), &e).unwrap();
        assert_eq!(d.get_str("_id").unwrap(), format!("acme:{}", e.id));
        assert_eq!(d.get_i64("t").unwrap(), e.occurred_at.timestamp_micros());
        assert_eq!(d.get_str("sev").unwrap(), "INFO");
        assert!(d.get("machine").unwrap().as_null().is_some());
        let back: UnifiedEvent = serde_json::from_str(d.get_str("b").unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
