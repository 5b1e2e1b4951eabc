//! Inbox isolation: the NATS protocol rewritten between an agent and nats-server.
//!
//! NATS clients pick their own reply subjects under `_INBOX.`, so permissions cannot tell one
//! agent's inbox from another's. The proxy therefore gives every session its own namespace,
//! `_INBOX_<tag>.` (the tag is the machine id, or a random `~logs-…` tag for a log session;
//! `~` never occurs in a machine id), and the session's user JWT may subscribe only to
//! `_INBOX_<tag>.>`. The agent keeps using `_INBOX.`:
//!
//! - client → server ([`ClientRewriter`]): the subject of `SUB`, the reply subject of
//!   `PUB`/`HPUB` and the `deliver_subject` of a JetStream consumer it creates are moved from
//!   `_INBOX.…` to `_INBOX_<tag>.…` (the `PUB` byte count follows the rewritten body). Names
//!   already in the rewritten namespace (`_INBOX_…`), a deliver subject outside the machine's
//!   own subjects, a second `CONNECT` and unknown operations are refused: the proxy answers
//!   `-ERR` and closes the session;
//! - server → client ([`ServerRewriter`]): the subject of `MSG`/`HMSG` (and names in `-ERR`
//!   texts) are moved back from `_INBOX_<tag>.` to `_INBOX.`. Payload byte counts do not
//!   depend on the subject and stay as they are.
//!
//! Both sides are streaming parsers: a control line or a payload may be split across any
//! number of WebSocket messages. Control lines end at `\n` (an optional `\r` before it is
//! dropped), as nats-server reads them, and are re-emitted with `\r\n`; payloads are passed on
//! as they arrive (only JetStream consumer-creation bodies, at most [`MAX_CAPTURED_BODY`]
//! bytes, are buffered to rewrite them).

use serde_json::Value;

/// The reply-subject prefix NATS clients use by default.
pub(super) const CLIENT_INBOX: &str = "_INBOX.";
/// The prefix of rewritten inboxes (`_INBOX_<tag>.`); clients may not use it themselves.
const REWRITTEN_INBOX: &str = "_INBOX_";
/// Longest control line from a client (nats-server's own default limit is 4 KiB).
const MAX_CLIENT_LINE: usize = 16 << 10;
/// Longest control line from nats-server (its `INFO` may list many URLs).
const MAX_SERVER_LINE: usize = 256 << 10;
/// Largest JetStream consumer-creation body buffered for rewriting.
pub(super) const MAX_CAPTURED_BODY: usize = 64 << 10;
/// JetStream API subjects whose body may name a deliver subject.
const CONSUMER_CREATE: [&str; 2] = [
    "$JS.API.CONSUMER.CREATE.",
    "$JS.API.CONSUMER.DURABLE.CREATE.",
];

/// Why a session was refused; the text goes to the client in `-ERR '…'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused(pub(super) &'static str);

/// One session's inbox namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inbox {
    /// `_INBOX_<tag>.`
    prefix: String,
}

impl Inbox {
    /// The namespace `_INBOX_<tag>.`; `tag` must be a valid subject token without `.`.
    pub(super) fn new(tag: &str) -> Self {
        Self {
            prefix: format!("{REWRITTEN_INBOX}{tag}."),
        }
    }

    /// The pattern the session's user may subscribe to: `_INBOX_<tag>.>`.
    pub(super) fn pattern(&self) -> String {
        format!("{}>", self.prefix)
    }

    /// A client name moved into the namespace (`_INBOX.x` → `_INBOX_<tag>.x`); other names
    /// unchanged; names already in some rewritten namespace refused.
    fn up(&self, name: &[u8]) -> Result<Vec<u8>, Refused> {
        if let Some(rest) = name.strip_prefix(CLIENT_INBOX.as_bytes()) {
            let mut out = Vec::with_capacity(self.prefix.len() + rest.len());
            out.extend_from_slice(self.prefix.as_bytes());
            out.extend_from_slice(rest);
            return Ok(out);
        }
        if name.starts_with(REWRITTEN_INBOX.as_bytes()) {
            return Err(Refused("Permissions Violation for a reserved inbox name"));
        }
        Ok(name.to_vec())
    }

    /// A server name moved back out of the namespace, if it is in it.
    fn down(&self, name: &[u8]) -> Option<Vec<u8>> {
        let rest = name.strip_prefix(self.prefix.as_bytes())?;
        let mut out = Vec::with_capacity(CLIENT_INBOX.len() + rest.len());
        out.extend_from_slice(CLIENT_INBOX.as_bytes());
        out.extend_from_slice(rest);
        Some(out)
    }
}

/// Where a parser is between operations.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a control line.
    Line,
    /// Passing on this many more payload bytes (payload and its `\r\n`).
    Pass(usize),
    /// Buffering a JetStream consumer-creation body (headers + payload + `\r\n`).
    Capture(Capture),
}

/// A `PUB`/`HPUB` whose body is buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Capture {
    subject: Vec<u8>,
    reply: Option<Vec<u8>>,
    /// `Some(header bytes)` for `HPUB`.
    headers: Option<usize>,
    /// Headers + payload + 2.
    need: usize,
}

/// Splits a control line into its whitespace-separated tokens.
fn tokens(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b' ' || *b == b'\t')
        .filter(|t| !t.is_empty())
        .collect()
}

/// The operation name of a control line's tokens, upper-cased (NATS ignores its case).
fn operation(tokens: &[&[u8]]) -> Vec<u8> {
    tokens
        .first()
        .map(|op| op.to_ascii_uppercase())
        .unwrap_or_default()
}

/// Passes on up to `n` payload bytes of `buf[pos..]`; returns `(new pos, bytes still to pass)`.
fn pass(n: usize, buf: &[u8], pos: usize, out: &mut Vec<u8>) -> (usize, usize) {
    let take = n.min(buf.len() - pos);
    out.extend_from_slice(&buf[pos..pos + take]);
    (pos + take, n - take)
}

/// A byte count: decimal digits only.
fn size(token: &[u8]) -> Option<usize> {
    if token.is_empty() || token.len() > 12 || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Appends `parts` separated by spaces, then `\r\n`.
fn emit_line(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// The next control line in `buf[pos..]`: `(line without \r\n, position after it)`.
fn next_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let end = buf[pos..].iter().position(|b| *b == b'\n')? + pos;
    let line = &buf[pos..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, end + 1))
}

/// Rewrites what an agent sends (after its first `CONNECT`).
#[derive(Debug)]
pub(super) struct ClientRewriter {
    inbox: Inbox,
    /// `machine.<id>.`: where a consumer may deliver outside the inbox (`None`: nowhere).
    own_subjects: Option<String>,
    buf: Vec<u8>,
    state: State,
}

impl ClientRewriter {
    /// A rewriter for `inbox`; consumers may deliver to the inbox or under `own_subjects`.
    pub(super) fn new(inbox: Inbox, own_subjects: Option<String>) -> Self {
        Self {
            inbox,
            own_subjects,
            buf: Vec::new(),
            state: State::Line,
        }
    }

    /// Takes the next bytes from the client; appends what to send upstream to `out`.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
        self.buf.extend_from_slice(data);
        let buf = std::mem::take(&mut self.buf);
        let result = self.process(&buf, out);
        self.buf = buf;
        let consumed = result?;
        self.buf.drain(..consumed);
        Ok(())
    }

    /// Processes `buf`; returns how many bytes were consumed.
    fn process(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, Refused> {
        let mut pos = 0;
        loop {
            match &self.state {
                State::Pass(n) => {
                    let (next, left) = pass(*n, buf, pos, out);
                    pos = next;
                    if left > 0 {
                        self.state = State::Pass(left);
                        return Ok(pos);
                    }
                    self.state = State::Line;
                }
                State::Capture(capture) => {
                    if buf.len() - pos < capture.need {
                        return Ok(pos);
                    }
                    let capture = capture.clone();
                    let body = &buf[pos..pos + capture.need];
                    pos += capture.need;
                    self.state = State::Line;
                    self.rewrite_body(&capture, body, out)?;
                }
                State::Line => {
                    let Some((line, next)) = next_line(buf, pos) else {
                        if buf.len() - pos > MAX_CLIENT_LINE {
                            return Err(Refused("Maximum Control Line Exceeded"));
                        }
                        return Ok(pos);
                    };
                    if line.len() > MAX_CLIENT_LINE {
                        return Err(Refused("Maximum Control Line Exceeded"));
                    }
                    self.control(line, out)?;
                    pos = next;
                }
            }
        }
    }

    fn control(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
        const BAD: Refused = Refused("Unknown Protocol Operation");
        let t = tokens(line);
        let op = operation(&t);
        match op.as_slice() {
            b"PUB" | b"HPUB" => {
                let headers = op == b"HPUB";
                let counts = if headers { 2 } else { 1 };
                let args = &t[1..];
                if args.len() != 1 + counts && args.len() != 2 + counts {
                    return Err(BAD);
                }
                let subject = args[0].to_vec();
                let reply = if args.len() == 2 + counts {
                    Some(self.inbox.up(args[1])?)
                } else {
                    None
                };
                let counts = &args[args.len() - counts..];
                let total = size(counts[counts.len() - 1]).ok_or(BAD)?;
                let header_len = if headers {
                    let h = size(counts[0]).ok_or(BAD)?;
                    if h > total {
                        return Err(BAD);
                    }
                    Some(h)
                } else {
                    None
                };
                if CONSUMER_CREATE
                    .iter()
                    .any(|p| subject.starts_with(p.as_bytes()))
                {
                    if total > MAX_CAPTURED_BODY {
                        return Err(Refused("Maximum Payload Violation"));
                    }
                    self.state = State::Capture(Capture {
                        subject,
                        reply,
                        headers: header_len,
                        need: total + 2,
                    });
                    return Ok(());
                }
                let mut parts: Vec<&[u8]> = vec![&op, &subject];
                if let Some(reply) = &reply {
                    parts.push(reply);
                }
                parts.extend_from_slice(counts);
                emit_line(out, &parts);
                self.state = State::Pass(total + 2);
                Ok(())
            }
            b"SUB" => {
                let args = &t[1..];
                if args.len() != 2 && args.len() != 3 {
                    return Err(BAD);
                }
                let subject = self.inbox.up(args[0])?;
                let mut parts: Vec<&[u8]> = vec![b"SUB", &subject];
                parts.extend_from_slice(&args[1..]);
                emit_line(out, &parts);
                Ok(())
            }
            b"UNSUB" | b"PING" | b"PONG" => {
                emit_line(out, &t);
                Ok(())
            }
            b"CONNECT" => Err(Refused("Authorization Violation")),
            _ => Err(BAD),
        }
    }

    /// Rewrites the `deliver_subject` of a consumer-creation body and emits the operation.
    fn rewrite_body(
        &self,
        capture: &Capture,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let Some(content) = body.strip_suffix(b"\r\n") else {
            return Err(Refused("Unknown Protocol Operation"));
        };
        let header_len = capture.headers.unwrap_or(0);
        let (head, payload) = content.split_at(header_len);
        let payload = match serde_json::from_slice::<Value>(payload) {
            Ok(mut request) => match self.rewrite_deliver(&mut request)? {
                true => serde_json::to_vec(&request)
                    .map_err(|_| Refused("Unknown Protocol Operation"))?,
                false => payload.to_vec(),
            },
            // nats-server answers a malformed request itself.
            Err(_) => payload.to_vec(),
        };
        let op: &[u8] = if capture.headers.is_some() {
            b"HPUB"
        } else {
            b"PUB"
        };
        let total = (head.len() + payload.len()).to_string();
        let header_count = head.len().to_string();
        let mut parts: Vec<&[u8]> = vec![op, &capture.subject];
        if let Some(reply) = &capture.reply {
            parts.push(reply);
        }
        if capture.headers.is_some() {
            parts.push(header_count.as_bytes());
        }
        parts.push(total.as_bytes());
        emit_line(out, &parts);
        out.extend_from_slice(head);
        out.extend_from_slice(&payload);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Moves `config.deliver_subject` into the inbox namespace; `Ok(true)` if it changed.
    fn rewrite_deliver(&self, request: &mut Value) -> Result<bool, Refused> {
        let Some(deliver) = request
            .get_mut("config")
            .and_then(|c| c.get_mut("deliver_subject"))
        else {
            return Ok(false);
        };
        let Some(subject) = deliver.as_str() else {
            return Ok(false);
        };
        if subject.starts_with(CLIENT_INBOX) {
            let moved = self.inbox.up(subject.as_bytes())?;
            let moved = String::from_utf8(moved).map_err(|_| Refused("Invalid Subject"))?;
            *deliver = Value::String(moved);
            return Ok(true);
        }
        match &self.own_subjects {
            Some(own) if subject.starts_with(own.as_str()) => Ok(false),
            _ => Err(Refused(
                "Permissions Violation for a deliver subject outside the machine's own",
            )),
        }
    }
}

/// Rewrites what nats-server sends to an agent.
#[derive(Debug)]
pub(super) struct ServerRewriter {
    inbox: Inbox,
    buf: Vec<u8>,
    state: State,
}

/// nats-server sent something that is not the NATS protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Garbled;

impl ServerRewriter {
    /// A rewriter for `inbox`.
    pub(super) fn new(inbox: Inbox) -> Self {
        Self {
            inbox,
            buf: Vec::new(),
            state: State::Line,
        }
    }

    /// Takes the next bytes from nats-server; appends what to send to the client to `out`.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Garbled> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = loop {
            match self.state {
                State::Pass(n) => {
                    let (next, left) = pass(n, &self.buf, pos, out);
                    pos = next;
                    if left > 0 {
                        self.state = State::Pass(left);
                        break Ok(());
                    }
                    self.state = State::Line;
                }
                State::Capture(_) => break Err(Garbled),
                State::Line => {
                    let Some((line, next)) = next_line(&self.buf, pos) else {
                        if self.buf.len() - pos > MAX_SERVER_LINE {
                            break Err(Garbled);
                        }
                        break Ok(());
                    };
                    match control_down(&self.inbox, line, out) {
                        Ok(state) => self.state = state,
                        Err(e) => break Err(e),
                    }
                    pos = next;
                }
            }
        };
        self.buf.drain(..pos);
        result
    }
}

/// Rewrites one control line from nats-server; returns the state after it.
fn control_down(inbox: &Inbox, line: &[u8], out: &mut Vec<u8>) -> Result<State, Garbled> {
    let t = tokens(line);
    let op = operation(&t);
    match op.as_slice() {
        b"MSG" | b"HMSG" => {
            // MSG <subject> <sid> [reply] <size>; HMSG <subject> <sid> [reply] <hdr> <total>
            let counts = if op == b"HMSG" { 2 } else { 1 };
            if t.len() != 3 + counts && t.len() != 4 + counts {
                return Err(Garbled);
            }
            let total = size(t[t.len() - 1]).ok_or(Garbled)?;
            let subject = inbox.down(t[1]);
            let mut parts: Vec<&[u8]> = t.clone();
            if let Some(subject) = &subject {
                parts[1] = subject;
            }
            emit_line(out, &parts);
            Ok(State::Pass(total + 2))
        }
        b"-ERR" => {
            let text = String::from_utf8_lossy(line).replace(&inbox.prefix, CLIENT_INBOX);
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
            Ok(State::Line)
        }
        _ => {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            Ok(State::Line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientRewriter {
        ClientRewriter::new(Inbox::new("m1"), Some("machine.m1.".to_owned()))
    }

    /// Feeds `input` in chunks of `chunk` bytes.
    fn up(rewriter: &mut ClientRewriter, input: &[u8], chunk: usize) -> Result<Vec<u8>, Refused> {
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            rewriter.feed(part, &mut out)?;
        }
        Ok(out)
    }

    fn down(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rewriter = ServerRewriter::new(Inbox::new("m1"));
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            rewriter.feed(part, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn client_inboxes_move_into_the_session_namespace_at_any_split() {
        let input = b"SUB _INBOX.abc.* 1\r\nsub\t_INBOX.> q 2\nPUB machine.m1.x _INBOX.abc.1 5\r\nhello\r\nHPUB machine.m1.y _INBOX.r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB _INBOX.srv.7 2\r\nok\r\nUNSUB 1 5\r\nPING\r\nPONG\r\n";
        let expected = b"SUB _INBOX_m1.abc.* 1\r\nSUB _INBOX_m1.> q 2\r\nPUB machine.m1.x _INBOX_m1.abc.1 5\r\nhello\r\nHPUB machine.m1.y _INBOX_m1.r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB _INBOX.srv.7 2\r\nok\r\nUNSUB 1 5\r\nPING\r\nPONG\r\n";
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let out = up(&mut client(), input, chunk).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn payloads_are_never_parsed_as_operations() {
        // A payload that looks like a SUB is passed on verbatim.
        let input = b"PUB machine.m1.x 20\r\nSUB _INBOX_m2.> 9\r\n\r\n";
        let out = up(&mut client(), input, 1).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn reserved_names_and_unknown_operations_are_refused() {
        for bad in [
            &b"SUB _INBOX_m2.> 1\r\n"[..],
            b"PUB machine.m1.x _INBOX_m2.a 0\r\n\r\n",
            b"CONNECT {}\r\n",
            b"MSG x 1 0\r\n\r\n",
            b"PUB machine.m1.x notanumber\r\n",
            b"HPUB machine.m1.x 9 3\r\n",
            b"SUB\r\n",
        ] {
            assert!(
                up(&mut client(), bad, 3).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'x'; MAX_CLIENT_LINE + 10];
        assert!(up(&mut client(), &long, 1000).is_err());
    }

    #[test]
    fn consumer_deliver_subjects_are_rewritten_with_correct_counts() {
        let body = r#"{"stream_name":"S","config":{"durable_name":"d","deliver_subject":"_INBOX.deliver","filter_subject":"machine.m1.a"}}"#;
        let input = format!(
            "PUB $JS.API.CONSUMER.CREATE.S.d.machine.m1.a _INBOX.r.1 {}\r\n{body}\r\nPING\r\n",
            body.len()
        );
        let out = up(&mut client(), input.as_bytes(), 5).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (line, rest) = text.split_once("\r\n").unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            parts[..3],
            [
                "PUB",
                "$JS.API.CONSUMER.CREATE.S.d.machine.m1.a",
                "_INBOX_m1.r.1"
            ]
        );
        let len: usize = parts[3].parse().unwrap();
        let (payload, tail) = rest.split_at(len);
        assert_eq!(tail, "\r\nPING\r\n");
        let v: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["config"]["deliver_subject"], "_INBOX_m1.deliver");
        assert_eq!(v["config"]["filter_subject"], "machine.m1.a");

        // With headers: the header count is kept, the total follows the new body.
        let input = format!(
            "HPUB $JS.API.CONSUMER.CREATE.S.d 12 {}\r\nNATS/1.0\r\n\r\n{body}\r\n",
            12 + body.len()
        );
        let text = String::from_utf8(up(&mut client(), input.as_bytes(), 4).unwrap()).unwrap();
        let (line, rest) = text.split_once("\r\n").unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[2], "12");
        let total: usize = parts[3].parse().unwrap();
        assert_eq!(rest.len(), total + 2);
        assert!(rest[12..].contains("_INBOX_m1.deliver"));

        // Its own subjects are fine; another machine's, or no namespace at all, are not.
        for (deliver, ok) in [
            ("machine.m1.tool-installation.inbox", true),
            ("machine.m2.command-execution", false),
            ("_INBOX_m2.x", false),
            ("anything", false),
        ] {
            let body = format!(r#"{{"config":{{"deliver_subject":"{deliver}"}}}}"#);
            let input = format!(
                "PUB $JS.API.CONSUMER.CREATE.S.d {}\r\n{body}\r\n",
                body.len()
            );
            assert_eq!(
                up(&mut client(), input.as_bytes(), 9).is_ok(),
                ok,
                "{deliver}"
            );
        }
        // A log session may deliver nowhere but its inbox.
        let mut logs = ClientRewriter::new(Inbox::new("~logs-1"), None);
        let body = r#"{"config":{"deliver_subject":"machine.m1.x"}}"#;
        let input = format!(
            "PUB $JS.API.CONSUMER.CREATE.S.d {}\r\n{body}\r\n",
            body.len()
        );
        assert!(up(&mut logs, input.as_bytes(), 9).is_err());
    }

    #[test]
    fn server_messages_move_back_out_of_the_namespace() {
        let input = b"INFO {\"x\":1}\r\nMSG _INBOX_m1.abc.1 3 5\r\nhello\r\nHMSG _INBOX_m1.r 4 _INBOX.srv 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG machine.m1.cmd 2 _INBOX_m1.x 3\r\nMSG\r\n-ERR 'Permissions Violation for Subscription to \"_INBOX_m1.q\"'\r\nPING\r\n";
        let expected = b"INFO {\"x\":1}\r\nMSG _INBOX.abc.1 3 5\r\nhello\r\nHMSG _INBOX.r 4 _INBOX.srv 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG machine.m1.cmd 2 _INBOX_m1.x 3\r\nMSG\r\n-ERR 'Permissions Violation for Subscription to \"_INBOX.q\"'\r\nPING\r\n";
        for chunk in [1, 4, 11, 4096] {
            assert_eq!(
                String::from_utf8_lossy(&down(input, chunk)),
                String::from_utf8_lossy(expected),
                "chunk {chunk}"
            );
        }
        // Another session's inbox is left alone (it can never be delivered here anyway).
        assert_eq!(
            down(b"MSG _INBOX_m2.a 1 0\r\n\r\n", 3),
            b"MSG _INBOX_m2.a 1 0\r\n\r\n"
        );
        let mut garbled = ServerRewriter::new(Inbox::new("m1"));
        assert!(
            garbled
                .feed(b"MSG a b c d e f\r\n", &mut Vec::new())
                .is_err()
        );
    }
}
