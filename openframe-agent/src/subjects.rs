//! The agent plane's subjects, built and parsed in one place.
//!
//! The original agent speaks on `machine.{machineId}.{suffix}` subjects (its own traffic and the
//! commands addressed to it), on two broadcast subjects (`machine.all.client-update` and
//! `machine.all.tool.{toolAgentKey}.update`) and ships its logs on `agents.logs`. This module
//! builds those subjects from typed values, parses them back (rejecting anything malformed), and
//! decides which subjects a machine may use, so the server can confine each agent to its own
//! namespace.
//!
//! It also holds the NATS subject grammar every [`AgentBus`](crate::bus::AgentBus) backend
//! enforces: [`validate_subject`] (a concrete subject to publish on), [`validate_pattern`] (a
//! subscription pattern with `*` and `>` wildcards), [`matches()`] and [`overlap`].
//!
//! ```
//! use openframe_agent::subjects::{MachineSubject, MachineSubjectKind};
//! use openframe_core::MachineId;
//!
//! let id = MachineId::parse("0192f7a4-1c2b-7d3e-8f00-123456789abc").unwrap();
//! let subject = MachineSubject::new(id.clone(), MachineSubjectKind::CommandExecutionResult).unwrap();
//! assert_eq!(
//!     subject.to_string(),
//!     "machine.0192f7a4-1c2b-7d3e-8f00-123456789abc.command-execution.result"
//! );
//! assert_eq!(MachineSubject::parse(&subject.to_string()).unwrap(), subject);
//! assert_eq!(MachineSubjectKind::Heartbeat.pattern(), "machine.*.heartbeat");
//! assert!(MachineSubject::parse("machine.*.heartbeat").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use openframe_core::{Error, MachineId, Result};

/// The first token of every machine subject.
pub const MACHINE_PREFIX: &str = "machine";

/// The second token of the broadcast subjects; never a machine id (see [`is_reserved_machine_id`]).
pub const BROADCAST_TOKEN: &str = "all";

/// The OpenFrame client update broadcast: every agent has a durable consumer on it.
pub const CLIENT_UPDATE: &str = "machine.all.client-update";

/// The pattern of every tool update broadcast (`machine.all.tool.{toolAgentKey}.update`).
pub const TOOL_UPDATE_PATTERN: &str = "machine.all.tool.*.update";

/// The subject agents ship their log batches to (JetStream publish, on a separate connection).
pub const AGENT_LOGS: &str = "agents.logs";

/// Longest subject or pattern the bus accepts, in bytes.
pub const MAX_SUBJECT_LEN: usize = 512;

/// The field name used in subject errors.
const FIELD: &str = "subject";

/// What a machine subject carries: the suffix after `machine.{id}.`.
///
/// The direction and delivery of each kind follow the original agent (see
/// [`MachineSubjectKind::direction`] and [`MachineSubjectKind::is_durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MachineSubjectKind {
    /// `heartbeat`: the agent's liveness signal, core NATS, every 60 s.
    Heartbeat,
    /// `hostname`: the agent's hostname, published once at start (captured by a stream).
    Hostname,
    /// `tool-connection`: a tool's own agent id on this machine (captured by a stream).
    ToolConnection,
    /// `installed-agent`: an agent (the client or a tool agent) installed at a version.
    InstalledAgent,
    /// `tool-installation`: the server asks the agent to install a tool (JetStream).
    ToolInstallation,
    /// `tool-uninstall`: the server asks the agent to uninstall a tool (JetStream).
    ToolUninstall,
    /// `client-uninstall`: the server asks the agent to uninstall itself (JetStream).
    ClientUninstall,
    /// `command-execution`: an ad-hoc command to run (core NATS).
    CommandExecution,
    /// `command-cancel`: cancel a running command (core NATS; the original agent ignores it).
    CommandCancel,
    /// `script-execution`: a saved script to run (core NATS).
    ScriptExecution,
    /// `script-schedule-execution`: a schedule fire carrying several scripts (core NATS).
    ScriptScheduleExecution,
    /// `command-execution.result`: the result of a command (core NATS).
    CommandExecutionResult,
    /// `script-execution.result`: the result of a script, ad hoc or scheduled (core NATS).
    ScriptExecutionResult,
}

/// Who publishes on a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The agent publishes, the server listens.
    AgentToServer,
    /// The server publishes, the agent listens.
    ServerToAgent,
}

impl MachineSubjectKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 13] = [
        Self::Heartbeat,
        Self::Hostname,
        Self::ToolConnection,
        Self::InstalledAgent,
        Self::ToolInstallation,
        Self::ToolUninstall,
        Self::ClientUninstall,
        Self::CommandExecution,
        Self::CommandCancel,
        Self::ScriptExecution,
        Self::ScriptScheduleExecution,
        Self::CommandExecutionResult,
        Self::ScriptExecutionResult,
    ];

    /// The subject suffix after `machine.{id}.`, e.g. `"command-execution.result"`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::Hostname => "hostname",
            Self::ToolConnection => "tool-connection",
            Self::InstalledAgent => "installed-agent",
            Self::ToolInstallation => "tool-installation",
            Self::ToolUninstall => "tool-uninstall",
            Self::ClientUninstall => "client-uninstall",
            Self::CommandExecution => "command-execution",
            Self::CommandCancel => "command-cancel",
            Self::ScriptExecution => "script-execution",
            Self::ScriptScheduleExecution => "script-schedule-execution",
            Self::CommandExecutionResult => "command-execution.result",
            Self::ScriptExecutionResult => "script-execution.result",
        }
    }

    /// The kind whose suffix is exactly `suffix`.
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.suffix() == suffix)
    }

    /// Who publishes this kind.
    pub const fn direction(self) -> Direction {
        match self {
            Self::Heartbeat
            | Self::Hostname
            | Self::ToolConnection
            | Self::InstalledAgent
            | Self::CommandExecutionResult
            | Self::ScriptExecutionResult => Direction::AgentToServer,
            Self::ToolInstallation
            | Self::ToolUninstall
            | Self::ClientUninstall
            | Self::CommandExecution
            | Self::CommandCancel
            | Self::ScriptExecution
            | Self::ScriptScheduleExecution => Direction::ServerToAgent,
        }
    }

    /// Whether a JetStream stream captures this kind in the original deployment (see
    /// [`agent_streams`](crate::bus::agent_streams)); the others are core NATS only.
    pub const fn is_durable(self) -> bool {
        matches!(
            self,
            Self::Hostname
                | Self::ToolConnection
                | Self::InstalledAgent
                | Self::ToolInstallation
                | Self::ToolUninstall
                | Self::ClientUninstall
        )
    }

    /// The pattern matching this kind for every machine, e.g. `machine.*.heartbeat`.
    pub fn pattern(self) -> String {
        format!("{MACHINE_PREFIX}.*.{}", self.suffix())
    }

    /// The subject of this kind for `machine_id`; see [`MachineSubject::new`].
    pub fn subject_for(self, machine_id: &MachineId) -> Result<String> {
        MachineSubject::new(machine_id.clone(), self).map(|s| s.to_string())
    }
}

impl fmt::Display for MachineSubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// Whether `machine_id` is reserved: `all` is the broadcast token, so a machine with that id
/// could neither be addressed nor confined. The server never generates it (machine ids are
/// UUIDs); subject builders refuse it and [`machine_may`] denies it everything.
pub fn is_reserved_machine_id(machine_id: &MachineId) -> bool {
    machine_id.as_str() == BROADCAST_TOKEN
}

/// A subject addressed to or sent by one machine: `machine.{machine_id}.{kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MachineSubject {
    /// The machine.
    pub machine_id: MachineId,
    /// What the subject carries.
    pub kind: MachineSubjectKind,
}

impl MachineSubject {
    /// The subject of `kind` for `machine_id`; `InvalidInput` if the id is reserved
    /// ([`is_reserved_machine_id`]).
    pub fn new(machine_id: MachineId, kind: MachineSubjectKind) -> Result<Self> {
        if is_reserved_machine_id(&machine_id) {
            return Err(Error::invalid(
                MachineId::FIELD,
                "`all` is the broadcast token, not a machine id",
            ));
        }
        Ok(Self { machine_id, kind })
    }

    /// Parses `machine.{id}.{suffix}`. Rejects other prefixes, wildcards, empty tokens,
    /// invalid machine ids, the broadcast token and unknown suffixes (`InvalidInput` on
    /// `subject`).
    pub fn parse(subject: &str) -> Result<Self> {
        match AgentSubject::parse(subject)? {
            AgentSubject::Machine(subject) => Ok(subject),
            _ => Err(Error::invalid(FIELD, "not a machine subject")),
        }
    }

    /// The pattern matching every subject of this machine: `machine.{id}.>` (for a reserved id,
    /// see [`is_reserved_machine_id`], that would be the broadcast namespace).
    pub fn wildcard(machine_id: &MachineId) -> String {
        format!("{MACHINE_PREFIX}.{machine_id}.>")
    }
}

impl fmt::Display for MachineSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MACHINE_PREFIX}.{}.{}",
            self.machine_id,
            self.kind.suffix()
        )
    }
}

impl FromStr for MachineSubject {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Any subject of the agent protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AgentSubject {
    /// `machine.{id}.{suffix}`.
    Machine(MachineSubject),
    /// `machine.all.client-update`.
    ClientUpdate,
    /// `machine.all.tool.{tool_agent_key}.update`.
    ToolUpdate {
        /// The tool agent's key, e.g. `meshcentral-agent`.
        tool_agent_key: String,
    },
    /// `agents.logs`.
    AgentLogs,
}

impl AgentSubject {
    /// The tool update broadcast for `tool_agent_key`; `InvalidInput` unless the key is a
    /// single subject token (no `.`, wildcards or whitespace).
    pub fn tool_update(tool_agent_key: impl Into<String>) -> Result<Self> {
        let tool_agent_key = tool_agent_key.into();
        check_token(&tool_agent_key, "toolAgentKey", false)?;
        Ok(Self::ToolUpdate { tool_agent_key })
    }

    /// Parses any agent protocol subject; `InvalidInput` on `subject` for anything else.
    pub fn parse(subject: &str) -> Result<Self> {
        let tokens = validate_subject(subject)?;
        match tokens.as_slice() {
            ["agents", "logs"] => Ok(Self::AgentLogs),
            [MACHINE_PREFIX, BROADCAST_TOKEN, "client-update"] => Ok(Self::ClientUpdate),
            [MACHINE_PREFIX, BROADCAST_TOKEN, "tool", key, "update"] => Ok(Self::ToolUpdate {
                tool_agent_key: (*key).to_owned(),
            }),
            [MACHINE_PREFIX, BROADCAST_TOKEN, ..] => {
                Err(Error::invalid(FIELD, "unknown broadcast subject"))
            }
            [MACHINE_PREFIX, id, rest @ ..] if !rest.is_empty() => {
                let machine_id = MachineId::parse(*id)
                    .map_err(|_| Error::invalid(FIELD, "the second token is not a machine id"))?;
                let suffix = rest.join(".");
                let kind = MachineSubjectKind::from_suffix(&suffix)
                    .ok_or_else(|| Error::invalid(FIELD, "unknown machine subject suffix"))?;
                Ok(Self::Machine(MachineSubject { machine_id, kind }))
            }
            _ => Err(Error::invalid(FIELD, "not an agent protocol subject")),
        }
    }
}

impl fmt::Display for AgentSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Machine(subject) => subject.fmt(f),
            Self::ClientUpdate => f.write_str(CLIENT_UPDATE),
            Self::ToolUpdate { tool_agent_key } => {
                write!(
                    f,
                    "{MACHINE_PREFIX}.{BROADCAST_TOKEN}.tool.{tool_agent_key}.update"
                )
            }
            Self::AgentLogs => f.write_str(AGENT_LOGS),
        }
    }
}

impl FromStr for AgentSubject {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl From<MachineSubject> for AgentSubject {
    fn from(subject: MachineSubject) -> Self {
        Self::Machine(subject)
    }
}

/// What a connection wants to do with a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Publish on a concrete subject.
    Publish,
    /// Subscribe to a subject or pattern (or consume it through a durable consumer).
    Subscribe,
}

/// Whether the agent of `machine_id` may publish on or subscribe to `subject`. The server uses
/// this to confine agents:
///
/// - publish: a concrete subject in the machine's own namespace, `machine.{id}.…` (at least one
///   token after the id, no wildcards);
/// - subscribe: a subject or pattern whose every match is in the machine's own namespace
///   (`machine.{id}.>` included, but not `machine.*.…`), or one of the broadcasts
///   (`machine.all.client-update`, `machine.all.tool.{key}.update`, `machine.all.tool.*.update`).
///
/// Everything else is denied, including malformed subjects, other machines' subjects,
/// `agents.logs` (log shipping is a separate, differently authenticated connection) and any
/// machine whose id is reserved ([`is_reserved_machine_id`]). JetStream API and inbox subjects
/// are not agent subjects; a NATS-facing proxy authorizes those on its own.
///
/// ```
/// use openframe_agent::subjects::{machine_may, Access};
/// use openframe_core::MachineId;
/// let me = MachineId::parse("m1").unwrap();
/// assert!(machine_may(&me, Access::Publish, "machine.m1.heartbeat"));
/// assert!(!machine_may(&me, Access::Publish, "machine.m2.heartbeat"));
/// assert!(machine_may(&me, Access::Subscribe, "machine.m1.>"));
/// assert!(!machine_may(&me, Access::Subscribe, "machine.*.heartbeat"));
/// assert!(machine_may(&me, Access::Subscribe, "machine.all.tool.*.update"));
/// assert!(!machine_may(&me, Access::Publish, "machine.all.client-update"));
/// ```
pub fn machine_may(machine_id: &MachineId, access: Access, subject: &str) -> bool {
    if is_reserved_machine_id(machine_id) {
        return false;
    }
    let tokens = match access {
        Access::Publish => validate_subject(subject),
        Access::Subscribe => validate_pattern(subject),
    };
    let Ok(tokens) = tokens else {
        return false;
    };
    let own = tokens.len() >= 3 && tokens[0] == MACHINE_PREFIX && tokens[1] == machine_id.as_str();
    match access {
        Access::Publish => own,
        Access::Subscribe => {
            own || matches!(
                tokens.as_slice(),
                [MACHINE_PREFIX, BROADCAST_TOKEN, "client-update"]
                    | [MACHINE_PREFIX, BROADCAST_TOKEN, "tool", _, "update"]
            )
        }
    }
}

/// Checks one token of a subject; `wildcards` allows a whole-token `*` or `>`.
fn check_token(token: &str, field: &'static str, wildcards: bool) -> Result<()> {
    if token.is_empty() {
        return Err(Error::invalid(field, "must not contain empty tokens"));
    }
    if wildcards && (token == "*" || token == ">") {
        return Ok(());
    }
    if token.contains(['*', '>']) {
        return Err(Error::invalid(
            field,
            "'*' and '>' are only allowed as whole wildcard tokens of a pattern",
        ));
    }
    if token.contains('.') {
        return Err(Error::invalid(field, "must be a single token (no '.')"));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

fn tokens_of(subject: &str, wildcards: bool) -> Result<Vec<&str>> {
    if subject.is_empty() {
        return Err(Error::invalid(FIELD, "must not be empty"));
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(Error::invalid(FIELD, "must be at most 512 bytes"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        check_token(token, FIELD, wildcards)?;
        if *token == ">" && i + 1 != tokens.len() {
            return Err(Error::invalid(FIELD, "'>' must be the last token"));
        }
    }
    if tokens[0].starts_with('$') || tokens[0] == "_INBOX" {
        return Err(Error::invalid(
            FIELD,
            "'$' subjects and '_INBOX' are reserved for the messaging system",
        ));
    }
    Ok(tokens)
}

/// Validates a concrete subject (what a message is published on) and returns its tokens:
/// non-empty dot-separated tokens without wildcards, whitespace or control characters, at most
/// [`MAX_SUBJECT_LEN`] bytes, not starting with a `$…` or `_INBOX` token (reserved for the
/// messaging system). `InvalidInput` on `subject` otherwise.
pub fn validate_subject(subject: &str) -> Result<Vec<&str>> {
    tokens_of(subject, false)
}

/// Validates a subscription pattern and returns its tokens: like [`validate_subject`], but a
/// whole token may be `*` (exactly one token) and the last token may be `>` (one or more
/// tokens).
pub fn validate_pattern(pattern: &str) -> Result<Vec<&str>> {
    tokens_of(pattern, true)
}

/// Whether `pattern` matches the concrete `subject` (NATS semantics). Both are taken as valid;
/// an invalid input simply does not match.
///
/// ```
/// use openframe_agent::subjects::matches;
/// assert!(matches("machine.*.heartbeat", "machine.m1.heartbeat"));
/// assert!(matches("machine.m1.>", "machine.m1.command-execution.result"));
/// assert!(!matches("machine.m1.>", "machine.m1"));
/// assert!(!matches("machine.*", "machine.m1.heartbeat"));
/// ```
pub fn matches(pattern: &str, subject: &str) -> bool {
    let (Ok(pattern), Ok(subject)) = (validate_pattern(pattern), validate_subject(subject)) else {
        return false;
    };
    tokens_match(&pattern, &subject)
}

/// Token-level [`matches`].
pub(crate) fn tokens_match(pattern: &[&str], subject: &[&str]) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        match *p {
            ">" => return subject.len() > i,
            "*" if i < subject.len() => {}
            literal if subject.get(i) == Some(&literal) => {}
            _ => return false,
        }
    }
    pattern.len() == subject.len()
}

/// Whether some concrete subject matches both patterns (as NATS decides whether two streams'
/// subjects overlap). Invalid inputs do not overlap.
///
/// ```
/// use openframe_agent::subjects::overlap;
/// assert!(overlap("machine.*.heartbeat", "machine.m1.>"));
/// assert!(!overlap("machine.*.heartbeat", "machine.*.hostname"));
/// assert!(!overlap("a.b", "a.b.>"));
/// ```
pub fn overlap(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (validate_pattern(a), validate_pattern(b)) else {
        return false;
    };
    tokens_overlap(&a, &b)
}

/// Token-level [`overlap`].
pub(crate) fn tokens_overlap(a: &[&str], b: &[&str]) -> bool {
    for (x, y) in a.iter().zip(b.iter()) {
        if *x == ">" || *y == ">" {
            return true;
        }
        if *x != "*" && *y != "*" && x != y {
            return false;
        }
    }
    a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MachineId {
        MachineId::parse(s).unwrap()
    }

    #[test]
    fn every_kind_round_trips() {
        let machine = MachineId::generate();
        for kind in MachineSubjectKind::ALL {
            let subject = MachineSubject::new(machine.clone(), kind).unwrap();
            let text = subject.to_string();
            assert_eq!(text, format!("machine.{machine}.{}", kind.suffix()));
            assert_eq!(MachineSubject::parse(&text).unwrap(), subject);
            assert_eq!(
                AgentSubject::parse(&text).unwrap(),
                AgentSubject::Machine(subject)
            );
            assert_eq!(MachineSubjectKind::from_suffix(kind.suffix()), Some(kind));
            assert!(matches(&kind.pattern(), &text));
            for other in MachineSubjectKind::ALL {
                assert_eq!(matches(&other.pattern(), &text), other == kind);
            }
        }
    }

    #[test]
    fn broadcasts_and_logs_round_trip() {
        for text in [
            "machine.all.client-update",
            "machine.all.tool.meshcentral-agent.update",
            "agents.logs",
        ] {
            assert_eq!(AgentSubject::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            AgentSubject::tool_update("fleetmdm-agent")
                .unwrap()
                .to_string(),
            "machine.all.tool.fleetmdm-agent.update"
        );
        assert!(matches(
            TOOL_UPDATE_PATTERN,
            "machine.all.tool.fleetmdm-agent.update"
        ));
        for bad in ["", "a.b", "*", "a b", "x>"] {
            assert!(AgentSubject::tool_update(bad).is_err(), "{bad:?}");
        }
        assert!(MachineSubject::parse("machine.all.client-update").is_err());
        assert!(MachineSubject::parse("agents.logs").is_err());
    }

    #[test]
    fn malformed_subjects_are_rejected() {
        let bad = [
            "",
            "machine",
            "machine.m1",
            "machine.m1.",
            ".machine.m1.heartbeat",
            "machine..heartbeat",
            "machine.*.heartbeat",
            "machine.>",
            "machine.m1.>",
            "machine.m1.heart*",
            "machine.m1.heartbeat ",
            "machine.m 1.heartbeat",
            "machine.m1.heartbeat\n",
            "machines.m1.heartbeat",
            "Machine.m1.heartbeat",
            "machine.m1.unknown",
            "machine.m1.heartbeat.extra",
            "machine.m1.command-execution.results",
            "machine.all.heartbeat",
            "machine.all.tool.x.y.update",
            "machine.-m1.heartbeat",
            "machine.m1!.heartbeat",
            "agents.logs.more",
            "$JS.API.INFO",
            "_INBOX.abc",
        ];
        for subject in bad {
            let err = AgentSubject::parse(subject).unwrap_err();
            assert_eq!(err.field(), Some("subject"), "{subject:?}: {err}");
            assert!(MachineSubject::parse(subject).is_err(), "{subject:?}");
        }
        let long = format!("machine.{}.heartbeat", "a".repeat(600));
        assert!(MachineSubject::parse(&long).is_err());
    }

    #[test]
    fn reserved_id_cannot_build_subjects() {
        let all = id("all");
        assert!(is_reserved_machine_id(&all));
        assert!(MachineSubject::new(all.clone(), MachineSubjectKind::Heartbeat).is_err());
        assert!(MachineSubjectKind::Heartbeat.subject_for(&all).is_err());
        assert!(!machine_may(
            &all,
            Access::Subscribe,
            "machine.all.client-update"
        ));
        assert!(!id("ALL").as_str().eq(BROADCAST_TOKEN));
    }

    #[test]
    fn grammar() {
        assert!(validate_subject("a.b.c").is_ok());
        assert!(validate_subject("a.*").is_err());
        assert!(validate_pattern("a.*.c").is_ok());
        assert!(validate_pattern("a.>").is_ok());
        assert!(validate_pattern(">").is_ok());
        for bad in [
            "a.>.c", "a.b*", "a..b", "a.", ".a", "a\tb", "", "$SYS.x", "_INBOX.>",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad:?}");
        }
        assert!(matches(">", "a"));
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.*", "a.*"), "a pattern is not a subject");
        assert!(overlap("a.*", "a.b"));
        assert!(overlap("a.>", "a.b.c"));
        assert!(overlap("*.b", "a.*"));
        assert!(!overlap("a.*", "a.b.c"));
        assert!(!overlap("a.b", "a.c"));
        assert!(overlap(">", "x.y"));
        assert!(!overlap("a", "a.>"));
    }

    #[test]
    fn confinement() {
        let me = id("m1");
        let yes_pub = [
            "machine.m1.heartbeat",
            "machine.m1.command-execution.result",
            "machine.m1.tool-connection",
        ];
        for s in yes_pub {
            assert!(machine_may(&me, Access::Publish, s), "{s}");
            assert!(machine_may(&me, Access::Subscribe, s), "{s}");
        }
        let no_pub = [
            "machine.m2.heartbeat",
            "machine.m1",
            "machine.m1.>",
            "machine.m1.*",
            "machine.*.heartbeat",
            "machine.all.client-update",
            "machine.all.tool.x.update",
            "agents.logs",
            "machine.m10.heartbeat",
            "machine.m.heartbeat",
            "other.m1.heartbeat",
            "$JS.API.STREAM.DELETE.X",
            "machine.m1..heartbeat",
            "",
        ];
        for s in no_pub {
            assert!(!machine_may(&me, Access::Publish, s), "{s}");
        }
        let yes_sub = [
            "machine.m1.>",
            "machine.m1.*",
            "machine.m1.command-execution",
            "machine.m1.tool-installation.inbox",
            "machine.all.client-update",
            "machine.all.tool.*.update",
            "machine.all.tool.meshcentral-agent.update",
        ];
        for s in yes_sub {
            assert!(machine_may(&me, Access::Subscribe, s), "{s}");
        }
        let no_sub = [
            "machine.*.heartbeat",
            "machine.*.>",
            "machine.>",
            ">",
            "machine.m2.>",
            "machine.all.>",
            "machine.all.*",
            "machine.all.tool.>",
            "machine.all.tool.*.*",
            "machine.*.client-update",
            "agents.logs",
            "machine.m1",
            "_INBOX.>",
        ];
        for s in no_sub {
            assert!(!machine_may(&me, Access::Subscribe, s), "{s}");
        }
    }
}
