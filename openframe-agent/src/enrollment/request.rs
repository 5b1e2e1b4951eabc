//! The registration request body and its validation.

use openframe_core::{Error, Machine, OrganizationId, OsType, Result, validate};
use serde::{Deserialize, Serialize};

/// One tag of a registration request: `key` alone, or `key` with values (each becomes a tag
/// named `key:value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagRequest {
    /// The tag key.
    pub key: String,
    /// Values; empty or absent means the tag `key` itself.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub values: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The body of `register` and `reinstall`, camelCase as the original agent sends it.
///
/// Unknown fields are ignored (agents may send more). Blank optional strings count as absent.
/// Of the optional inventory fields, those a [`Machine`] has are stored; `osUuid` and `userId`
/// are accepted and checked for length only.
///
/// ```
/// use openframe_agent::enrollment::RegistrationRequest;
/// let r: RegistrationRequest = serde_json::from_str(
///     r#"{"hostname":"vm","agentVersion":"1.2.3","osType":"WINDOWS","future":true}"#,
/// ).unwrap();
/// assert_eq!(r.hostname.as_deref(), Some("vm"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    /// Hostname (required, at most 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Agent version (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The organization to enroll into; absent or blank means the tenant's default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// The installing user (accepted, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `WINDOWS`, `MAC_OS` or `LINUX` (required; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// Tags to attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRequest>>,
    /// An IP address of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// OS installation UUID (accepted, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_uuid: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValidRequest {
    pub(crate) hostname: String,
    pub(crate) agent_version: String,
    pub(crate) os_type: OsType,
    /// `Err` keeps an unparsable id so it is reported as an unknown organization.
    pub(crate) organization: Option<std::result::Result<OrganizationId, ()>>,
    /// Distinct tag names (`key` or `key:value`), in request order.
    pub(crate) tag_names: Vec<String>,
    ip: Option<String>,
    mac_address: Option<String>,
    display_name: Option<String>,
    serial_number: Option<String>,
    manufacturer: Option<String>,
    model: Option<String>,
    os_version: Option<String>,
}

/// A present, non-blank, trimmed value.
fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn optional(field: &'static str, value: &Option<String>) -> Result<Option<String>> {
    let value = present(value);
    validate::opt_name(field, value.as_deref())?;
    Ok(value)
}

fn required(field: &'static str, value: &Option<String>) -> Result<String> {
    let value = present(value).ok_or_else(|| Error::invalid(field, "is required"))?;
    validate::name(field, &value)?;
    Ok(value)
}

/// Parses an OS type (case-insensitive); anything else is a `VALIDATION_ERROR` on `osType`.
pub(crate) fn os_type(value: &Option<String>) -> Result<OsType> {
    let raw = present(value).ok_or_else(|| Error::invalid("osType", "is required"))?;
    raw.parse::<OsType>().map_err(|_| {
        let allowed: Vec<&str> = OsType::ALL.iter().map(|o| o.as_str()).collect();
        Error::invalid("osType", format!("must be one of {}", allowed.join(", ")))
    })
}

impl RegistrationRequest {
    /// Checks the request; `max_tags` bounds the tags it expands to.
    pub(crate) fn validate(&self, max_tags: usize) -> Result<ValidRequest> {
        let hostname = required("hostname", &self.hostname)?;
        let agent_version = required("agentVersion", &self.agent_version)?;
        let os_type = os_type(&self.os_type)?;
        let organization =
            present(&self.organization_id).map(|raw| OrganizationId::parse(raw).map_err(|_| ()));
        optional("userId", &self.user_id)?;
        optional("osUuid", &self.os_uuid)?;
        let ip = optional("ip", &self.ip)?;
        if let Some(ip) = &ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid("ip", "must be an IP address"));
            }
        }
        let tag_names = tag_names(self.tags.as_deref().unwrap_or_default(), max_tags)?;
        Ok(ValidRequest {
            hostname,
            agent_version,
            os_type,
            organization,
            tag_names,
            ip,
            mac_address: optional("macAddress", &self.mac_address)?,
            display_name: optional("displayName", &self.display_name)?,
            serial_number: optional("serialNumber", &self.serial_number)?,
            manufacturer: optional("manufacturer", &self.manufacturer)?,
            model: optional("model", &self.model)?,
            os_version: optional("osVersion", &self.os_version)?,
        })
    }
}

/// Expands tags to distinct names (case-insensitively, as tag names are unique), at most
/// `max` of them.
fn tag_names(tags: &[TagRequest], max: usize) -> Result<Vec<String>> {
    let too_many = || Error::invalid("tags", format!("must expand to at most {max} tags"));
    if tags.len() > max {
        return Err(too_many());
    }
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| -> Result<()> {
        validate::name("tags", &name)?;
        let key = name.to_lowercase();
        if !names.iter().any(|n| n.to_lowercase() == key) {
            if names.len() == max {
                return Err(too_many());
            }
            names.push(name);
        }
        Ok(())
    };
    for tag in tags {
        let key = tag.key.trim();
        if key.is_empty() {
            return Err(Error::invalid("tags", "every tag needs a key"));
        }
        let values: Vec<&str> = tag
            .values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if tag.values.len() > max {
            return Err(too_many());
        }
        if values.is_empty() {
            push(key.to_owned())?;
        }
        for value in values {
            push(format!("{key}:{value}"))?;
        }
    }
    Ok(names)
}

impl ValidRequest {
    /// Writes the reported inventory onto `machine` (hostname, OS, agent version and every
    /// optional field that was sent; fields not sent keep their value).
    pub(crate) fn apply(&self, machine: &mut Machine) {
        machine.hostname.clone_from(&self.hostname);
        machine.os_type = self.os_type;
        machine.agent_version = Some(self.agent_version.clone());
        if let Some(ip) = &self.ip {
            if !machine.ip_addresses.contains(ip) {
                machine.ip_addresses = vec![ip.clone()];
            }
        }
        let fields = [
            (&mut machine.mac_address, &self.mac_address),
            (&mut machine.display_name, &self.display_name),
            (&mut machine.serial_number, &self.serial_number),
            (&mut machine.manufacturer, &self.manufacturer),
            (&mut machine.model, &self.model),
            (&mut machine.os_version, &self.os_version),
        ];
        for (slot, value) in fields {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RegistrationRequest {
        RegistrationRequest {
            hostname: Some("vm-01".into()),
            agent_version: Some("1.0.0".into()),
            os_type: Some("WINDOWS".into()),
            ..Default::default()
        }
    }

    fn field_of(e: Error) -> String {
        e.field().unwrap_or_default().to_owned()
    }

    #[test]
    fn required_fields_and_os_type() {
        assert!(base().validate(50).is_ok());
        for (mutate, field) in [
            (
                (|r: &mut RegistrationRequest| r.hostname = None) as fn(&mut RegistrationRequest),
                "hostname",
            ),
            (|r| r.hostname = Some("   ".into()), "hostname"),
            (|r| r.hostname = Some("x".repeat(256)), "hostname"),
            (|r| r.agent_version = None, "agentVersion"),
            (|r| r.os_type = Some("SOLARIS".into()), "osType"),
            (|r| r.os_type = None, "osType"),
            (|r| r.ip = Some("not-an-ip".into()), "ip"),
        ] {
            let mut r = base();
            mutate(&mut r);
            let err = r.validate(50).err().map(field_of);
            assert_eq!(err.as_deref(), Some(field));
        }
        let mut r = base();
        r.os_type = Some("linux".into());
        assert_eq!(r.validate(50).map(|v| v.os_type).ok(), Some(OsType::Linux));
    }

    #[test]
    fn tags_expand_dedupe_and_are_bounded() {
        let mut r = base();
        r.tags = Some(vec![
            TagRequest {
                key: "site".into(),
                values: vec!["paris".into(), "PARIS".into(), " ".into()],
            },
            TagRequest {
                key: "vip".into(),
                values: vec![],
            },
        ]);
        let names = r.validate(50).map(|v| v.tag_names).unwrap_or_default();
        assert_eq!(names, vec!["site:paris".to_owned(), "vip".to_owned()]);
        r.tags = Some(vec![TagRequest {
            key: "k".into(),
            values: (0..51).map(|i| i.to_string()).collect(),
        }]);
        assert_eq!(r.validate(50).err().map(field_of).as_deref(), Some("tags"));
        r.tags = Some(vec![TagRequest {
            key: " ".into(),
            values: vec![],
        }]);
        assert_eq!(r.validate(50).err().map(field_of).as_deref(), Some("tags"));
    }
}
