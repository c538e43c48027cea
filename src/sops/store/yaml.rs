//! YAML store: multi-document, comments kept (and encrypted), key order kept.
//!
//! Parsing uses saphyr-parser's event stream with source spans. The parser has
//! no comment events, so comments are found in the source text between
//! scalar spans and attached to the container open at that point, with an
//! indentation rule for comments that trail a nested block.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::StoreError;
use crate::sops::scalar;
use crate::sops::tree::{Documents, Map, MapItem, Seq, SeqItem, Value};

/// Default indentation, as sops writes.
pub const INDENT: usize = 4;

struct Comment {
    pos: usize,
    col: usize,
    text: String,
}

/// An anchored node and what expanding it costs (its node count and scalar
/// bytes, nested alias expansions included), so an alias is charged before
/// it is cloned.
struct Anchor {
    value: Value,
    nodes: usize,
    bytes: usize,
}

/// Alias expansion below this many nodes per document is never refused.
const ALIAS_RATIO_LOW: usize = 400_000;
/// From this many nodes per document on, at most 10% may come from aliases.
const ALIAS_RATIO_HIGH: usize = 4_000_000;
/// Scalar bytes a whole file may add by alias expansion. yaml.v3 shares
/// strings between an anchor and its aliases; here they are copied, so a long
/// anchored scalar counts by its size too.
pub const MAX_ALIAS_BYTES: usize = 16 << 20;
/// Nodes (keys, values, expanded aliases) one file may build. Far above any
/// manifest (it takes 16 MB of dense YAML); it caps memory wherever a file
/// is read, the controller included, whose files are also at most
/// 4 MiB (`controller::git::MAX_FILE_BYTES`).
pub const MAX_NODES: usize = 8_000_000;

/// The bound on alias expansion (billion-laughs files), the same rule as
/// yaml.v3's "document contains excessive aliasing" that sops and kubectl
/// inherit: per document, once more than 1000 nodes were decoded and more
/// than 100 of them came from aliases, the share from aliases may not exceed
/// 99% (up to 400k nodes), falling linearly to 10% at 4M nodes. Every alias
/// is charged its whole expanded size before anything is copied, so memory
/// stays proportional to the input.
struct Expansion {
    /// File-wide node cap ([`MAX_NODES`]).
    max_nodes: usize,
    /// Nodes built in the whole file.
    total: usize,
    doc: usize,
    /// Nodes built in this document (keys, values, expanded aliases).
    decoded: usize,
    /// Of those, nodes that came from alias expansion.
    aliased: usize,
    /// Scalar bytes built so far, file-wide (to size anchors).
    bytes: usize,
    /// Of those, bytes that came from alias expansion.
    alias_bytes: usize,
}

impl Expansion {
    fn new(max_nodes: usize) -> Expansion {
        Expansion {
            max_nodes,
            total: 0,
            doc: 0,
            decoded: 0,
            aliased: 0,
            bytes: 0,
            alias_bytes: 0,
        }
    }

    fn start_document(&mut self, doc: usize) {
        self.doc = doc;
        self.decoded = 0;
        self.aliased = 0;
    }

    fn limit(&self, line: usize, msg: String) -> StoreError {
        StoreError::Limit {
            doc: self.doc,
            line,
            msg,
        }
    }

    /// One node built from the source: `bytes` is its scalar text length.
    fn node(&mut self, bytes: usize, line: usize) -> Result<(), StoreError> {
        self.decoded += 1;
        self.bytes += bytes;
        self.total += 1;
        self.check_total(line)
    }

    fn check_total(&self, line: usize) -> Result<(), StoreError> {
        if self.total > self.max_nodes {
            return Err(self.limit(
                line,
                format!(
                    "more than {} YAML nodes in the file; refused",
                    self.max_nodes
                ),
            ));
        }
        Ok(())
    }

    /// Charges an alias before it is expanded; refuses it over the bound.
    fn alias(&mut self, a: &Anchor, line: usize) -> Result<(), StoreError> {
        self.decoded = self.decoded.saturating_add(a.nodes);
        self.aliased = self.aliased.saturating_add(a.nodes);
        self.total = self.total.saturating_add(a.nodes);
        self.bytes = self.bytes.saturating_add(a.bytes);
        self.alias_bytes = self.alias_bytes.saturating_add(a.bytes);
        let limit = |msg: String| self.limit(line, msg);
        if self.excessive() {
            return Err(limit(format!(
                "excessive aliasing: {} of {} nodes come from alias expansion (a YAML alias bomb?); refused",
                self.aliased, self.decoded
            )));
        }
        if self.alias_bytes > MAX_ALIAS_BYTES {
            return Err(limit(format!(
                "excessive aliasing: alias expansion exceeds {MAX_ALIAS_BYTES} bytes of scalars; refused"
            )));
        }
        self.check_total(line)
    }

    fn excessive(&self) -> bool {
        self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded)
    }
}

/// The share of a document's nodes that may come from aliases (yaml.v3's
/// `allowedAliasRatio`).
fn allowed_alias_ratio(decoded: usize) -> f64 {
    if decoded <= ALIAS_RATIO_LOW {
        0.99
    } else if decoded >= ALIAS_RATIO_HIGH {
        0.10
    } else {
        let span = (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW) as f64;
        0.99 - 0.89 * ((decoded - ALIAS_RATIO_LOW) as f64 / span)
    }
}

struct Builder<'s> {
    src: &'s str,
    events: Vec<(Event<'s>, Span)>,
    i: usize,
    /// char index → byte offset (saphyr markers count characters).
    char_bytes: Option<Vec<usize>>,
    comments: Vec<Comment>,
    next_comment: usize,
    anchors: HashMap<usize, Anchor>,
    expansion: Expansion,
}

fn syntax(line: usize, col: usize, msg: impl Into<String>) -> StoreError {
    StoreError::Syntax {
        format: "YAML",
        line,
        col,
        msg: msg.into(),
    }
}

impl<'s> Builder<'s> {
    fn byte(&self, char_index: usize) -> usize {
        match &self.char_bytes {
            None => char_index,
            Some(v) => v
                .get(char_index)
                .copied()
                .unwrap_or(*v.last().unwrap_or(&0)),
        }
    }

    /// The column of the `-` that introduces the block-sequence element at
    /// byte `pos`, if there is one on its line. Comments trailing the
    /// sequence at that column (where the emitter writes them) stay in it.
    fn dash_col(&self, pos: usize) -> Option<usize> {
        let line = &self.src[self.src[..pos].rfind('\n').map_or(0, |n| n + 1)..pos];
        let before = line.trim_end_matches([' ', '\t']);
        if !before.ends_with('-') || before.len() == line.len() {
            return None;
        }
        Some(before.chars().count() - 1)
    }

    fn next(&mut self) -> Result<(Event<'s>, Span), StoreError> {
        let e = self
            .events
            .get(self.i)
            .cloned()
            .ok_or_else(|| syntax(0, 0, "unexpected end of input"))?;
        self.i += 1;
        Ok(e)
    }

    /// Where a block that ended at `pos` stops collecting its trailing
    /// comments: the next event that is not an end mark (end marks may sit
    /// before the comments that follow a block scalar). A flow collection
    /// (`]` / `}` at `pos`) keeps none: it is written back in block style,
    /// where they would not stay in it.
    fn end_pos(&self, pos: usize) -> usize {
        if matches!(self.src.as_bytes().get(pos), Some(b']' | b'}')) {
            return 0;
        }
        self.events[self.i..]
            .iter()
            .find(|(e, _)| {
                !matches!(
                    e,
                    Event::MappingEnd | Event::SequenceEnd | Event::DocumentEnd | Event::StreamEnd
                )
            })
            .map_or(usize::MAX, |(_, sp)| self.byte(sp.start.index()))
            .max(pos)
    }

    /// Comments positioned before `pos` with column ≥ `min_col` go to `sink`.
    fn take_comments(&mut self, pos: usize, min_col: usize) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.pos >= pos || c.col < min_col {
                break;
            }
            out.push(c.text.clone());
            self.next_comment += 1;
        }
        out
    }

    fn documents(&mut self) -> Result<Vec<Map>, StoreError> {
        let mut docs = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    self.expansion.start_document(docs.len());
                    let (ev, span) = self.next()?;
                    let mut root = match ev {
                        Event::MappingStart(anchor, _) => {
                            let mark = self.mark();
                            let m = self.mapping(span, 0)?;
                            if anchor > 0 {
                                self.record(
                                    anchor,
                                    mark,
                                    Value::Map(m.clone()),
                                    span.start.line(),
                                )?;
                            }
                            m
                        }
                        Event::Scalar(ref s, ScalarStyle::Plain, _, None) if resolves_null(s) => {
                            Map::default()
                        }
                        Event::SequenceStart(..) => {
                            return Err(syntax(
                                span.start.line(),
                                span.start.col(),
                                "a document must be a mapping, found a list",
                            ));
                        }
                        _ => {
                            return Err(syntax(
                                span.start.line(),
                                span.start.col(),
                                "a document must be a mapping",
                            ));
                        }
                    };
                    let (ev, span) = self.next()?;
                    if !matches!(ev, Event::DocumentEnd) {
                        return Err(syntax(
                            span.start.line(),
                            span.start.col(),
                            "expected the end of the document",
                        ));
                    }
                    let end = self.byte(span.start.index());
                    for c in self.take_comments(end, 0) {
                        root.0.push(MapItem::Comment(c));
                    }
                    docs.push(root);
                }
                _ => {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        "unexpected YAML event",
                    ));
                }
            }
        }
        // Comments after the last document belong to it.
        let rest: Vec<String> = self.take_comments(usize::MAX, 0);
        if let Some(last) = docs.last_mut() {
            last.0.extend(rest.into_iter().map(MapItem::Comment));
        } else if !rest.is_empty() {
            docs.push(Map(rest.into_iter().map(MapItem::Comment).collect()));
        }
        Ok(docs)
    }

    /// Builds one node (counted), recording it under its anchor.
    fn anchored(
        &mut self,
        anchor: usize,
        line: usize,
        build: impl FnOnce(&mut Self) -> Result<Value, StoreError>,
    ) -> Result<Value, StoreError> {
        let mark = self.mark();
        let value = build(self)?;
        if anchor > 0 {
            self.record(anchor, mark, value.clone(), line)?;
        }
        Ok(value)
    }

    /// The counters before a node is built (see [`Builder::record`]).
    fn mark(&self) -> (usize, usize) {
        (self.expansion.decoded, self.expansion.bytes)
    }

    /// Records an anchored node with what expanding it costs: the nodes and
    /// scalar bytes built since `mark`. The copy kept counts toward the
    /// file's node cap (nested anchors would otherwise copy quadratically).
    fn record(
        &mut self,
        anchor: usize,
        mark: (usize, usize),
        value: Value,
        line: usize,
    ) -> Result<(), StoreError> {
        let a = Anchor {
            value,
            nodes: self.expansion.decoded.saturating_sub(mark.0),
            bytes: self.expansion.bytes.saturating_sub(mark.1),
        };
        self.expansion.total = self.expansion.total.saturating_add(a.nodes);
        self.expansion.check_total(line)?;
        self.anchors.insert(anchor, a);
        Ok(())
    }

    /// The anchor an alias names, charged to the expansion bound (before the
    /// caller clones it).
    fn alias(&mut self, id: usize, span: Span) -> Result<&Value, StoreError> {
        let a = self.anchors.get(&id).ok_or_else(|| {
            syntax(
                span.start.line(),
                span.start.col(),
                "alias to an unknown anchor",
            )
        })?;
        self.expansion.alias(a, span.start.line())?;
        Ok(&a.value)
    }

    fn node(&mut self, ev: Event<'s>, span: Span) -> Result<Value, StoreError> {
        match ev {
            Event::Scalar(s, style, anchor, tag) => self.anchored(anchor, span.start.line(), |b| {
                b.expansion.node(s.len(), span.start.line())?;
                scalar_value(
                    &s,
                    style,
                    tag.as_deref()
                        .map(|t| (t.handle.as_str(), t.suffix.as_str())),
                )
                .map_err(|m| syntax(span.start.line(), span.start.col(), m))
            }),
            Event::Alias(id) => self.alias(id, span).cloned(),
            Event::SequenceStart(anchor, _) => self.anchored(anchor, span.start.line(), |b| {
                b.expansion.node(0, span.start.line())?;
                b.sequence(span).map(Value::Seq)
            }),
            Event::MappingStart(anchor, _) => self.anchored(anchor, span.start.line(), |b| {
                b.expansion.node(0, span.start.line())?;
                b.mapping(span, span.start.col()).map(Value::Map)
            }),
            _ => Err(syntax(
                span.start.line(),
                span.start.col(),
                "unexpected YAML event",
            )),
        }
    }

    fn mapping(&mut self, _start: Span, _col: usize) -> Result<Map, StoreError> {
        let mut m = Map::default();
        // Keys seen so far: a hash set keeps the duplicate check linear.
        let mut seen: HashSet<String> = HashSet::new();
        let mut indent: Option<usize> = None;
        loop {
            let (ev, span) = self.next()?;
            let pos = self.byte(span.start.index());
            if let Event::MappingEnd = ev {
                let pos = self.end_pos(pos);
                for c in self.take_comments(pos, indent.unwrap_or(0)) {
                    m.0.push(MapItem::Comment(c));
                }
                return Ok(m);
            }
            let col = *indent.get_or_insert(span.start.col());
            for c in self.take_comments(pos, 0) {
                m.0.push(MapItem::Comment(c));
            }
            let _ = col;
            let key = match ev {
                Event::Scalar(s, style, _, _) => {
                    if style == ScalarStyle::Plain {
                        match scalar::resolve_plain(&s) {
                            Some(Value::Str(_)) => {}
                            Some(Value::Null) if s.is_empty() => {
                                return Err(syntax(
                                    span.start.line(),
                                    span.start.col(),
                                    "empty mapping key",
                                ));
                            }
                            _ => {
                                return Err(syntax(
                                    span.start.line(),
                                    span.start.col(),
                                    "mapping keys must be strings (quote the key)",
                                ));
                            }
                        }
                    }
                    self.expansion.node(s.len(), span.start.line())?;
                    s.into_owned()
                }
                Event::Alias(id) => match self.alias(id, span)? {
                    Value::Str(s) => s.clone(),
                    _ => {
                        return Err(syntax(
                            span.start.line(),
                            span.start.col(),
                            "mapping keys must be strings",
                        ));
                    }
                },
                _ => {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        "complex mapping keys are not supported",
                    ));
                }
            };
            if !seen.insert(key.clone()) {
                return Err(syntax(
                    span.start.line(),
                    span.start.col(),
                    format!("duplicate key {key:?}"),
                ));
            }
            let (vev, vspan) = self.next()?;
            let v = self.node(vev, vspan)?;
            m.0.push(MapItem::Pair(key, v));
        }
    }

    fn sequence(&mut self, start: Span) -> Result<Seq, StoreError> {
        let mut s = Seq::default();
        // A block list's start mark is its first dash, unless an anchor or a
        // tag comes first; then the dash is found before the first item.
        let at = self.byte(start.start.index());
        let mut indent: Option<usize> =
            (self.src.as_bytes().get(at) == Some(&b'-')).then(|| start.start.col());
        loop {
            let (ev, span) = self.next()?;
            let pos = self.byte(span.start.index());
            if let Event::SequenceEnd = ev {
                let pos = self.end_pos(pos);
                for c in self.take_comments(pos, indent.unwrap_or(0)) {
                    s.0.push(SeqItem::Comment(c));
                }
                return Ok(s);
            }
            if indent.is_none() {
                indent = Some(self.dash_col(pos).unwrap_or(span.start.col()));
            }
            for c in self.take_comments(pos, 0) {
                s.0.push(SeqItem::Comment(c));
            }
            let v = self.node(ev, span)?;
            s.0.push(SeqItem::Elem(v));
        }
    }
}

fn resolves_null(s: &str) -> bool {
    matches!(scalar::resolve_plain(s), Some(Value::Null))
}

fn scalar_value(s: &str, style: ScalarStyle, tag: Option<(&str, &str)>) -> Result<Value, String> {
    if let Some((handle, suffix)) = tag {
        let core = handle == "tag:yaml.org,2002:" || handle == "!!";
        if core {
            match suffix {
                "str" => return Ok(Value::Str(s.to_string())),
                "binary" => {
                    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(clean)
                        .map_err(|_| "invalid !!binary value".to_string())?;
                    return Ok(match String::from_utf8(b) {
                        Ok(s) => Value::Str(s),
                        Err(e) => Value::Bytes(e.into_bytes()),
                    });
                }
                "null" => return Ok(Value::Null),
                _ => {}
            }
            // !!int/!!float/!!bool/!!timestamp: resolve the text even if quoted.
            return scalar::resolve_plain(s)
                .ok_or_else(|| "integer out of the int64 range".to_string());
        }
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(s.to_string()));
    }
    scalar::resolve_plain(s)
        .ok_or_else(|| "integer out of the int64 range (sops cannot represent it)".to_string())
}

/// A block scalar that runs to the end of a file without a final line break
/// has no line break to keep (YAML 1.2 §8.1.1.2: clip and keep chomping
/// preserve the breaks that are there), but saphyr-parser reads one in: so
/// `m: |` + `  a` at the very end would be `"a\n"` where yaml.v3 (sops) reads
/// `"a"`. Its trailing breaks are recounted from the source.
fn fix_block_scalar_at_eof(src: &str, events: &mut [(Event<'_>, Span)]) {
    if src.ends_with(['\n', '\r']) {
        return;
    }
    let chars = src.chars().count();
    for (ev, span) in events.iter_mut() {
        let Event::Scalar(v, ScalarStyle::Literal | ScalarStyle::Folded, ..) = ev else {
            continue;
        };
        if span.end.index() != chars {
            continue;
        }
        let header_at = src
            .char_indices()
            .nth(span.start.index())
            .map_or(src.len(), |(b, _)| b);
        let header = src[..header_at]
            .rfind(['|', '>'])
            .map_or(String::new(), |h| {
                src[h..header_at]
                    .chars()
                    .take_while(|c| "|>+-0123456789".contains(*c))
                    .collect()
            });
        let tail = &src[src.trim_end().len()..];
        let breaks = tail.matches('\n').count().max(tail.matches('\r').count());
        let breaks = if header.contains('+') {
            breaks
        } else if header.contains('-') {
            0
        } else {
            breaks.min(1)
        };
        let mut fixed = v.trim_end_matches('\n').to_string();
        fixed.extend(std::iter::repeat_n('\n', breaks));
        *v = std::borrow::Cow::Owned(fixed);
    }
}

/// Finds `#` comments outside scalar spans.
fn find_comments(src: &str, scalar_spans: &[(usize, usize)]) -> Vec<Comment> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut spans = scalar_spans.iter().peekable();
    let mut i = 0;
    let mut line_start = 0;
    while i < bytes.len() {
        while let Some(&&(_, e)) = spans.peek() {
            if e <= i {
                spans.next();
            } else {
                break;
            }
        }
        if let Some(&&(st, e)) = spans.peek() {
            if st <= i && i < e {
                // Skip to the end of the scalar, tracking line starts.
                if let Some(nl) = src[i..e].rfind(['\n', '\r']) {
                    line_start = i + nl + 1;
                }
                i = e;
                continue;
            }
        }
        let b = bytes[i];
        // YAML ends lines at \n, \r\n and a bare \r alike.
        if b == b'\n' || b == b'\r' {
            line_start = i + 1;
        } else if b == b'#' && (i == line_start || matches!(bytes[i - 1], b' ' | b'\t')) {
            let end = src[i..]
                .find(['\n', '\r'])
                .map(|n| i + n)
                .unwrap_or(src.len());
            let text = src[i + 1..end].to_string();
            let col = src[line_start..i].chars().count();
            // A comment on a line of its own keeps its column; a trailing one
            // belongs to the line's item, so treat it as deeply indented.
            let own_line = src[line_start..i].trim().is_empty();
            out.push(Comment {
                pos: i,
                col: if own_line { col } else { usize::MAX / 2 },
                text,
            });
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

/// A block scalar on the file's last line, with no line break after it,
/// has no final line break to keep (YAML 1.2 §8.1.1.2; yaml.v3 agrees, so
/// `sops --extract` prints `multi\nline`); saphyr adds one.
fn unclip_at_eof(src: &str, events: &mut [(Event<'_>, Span)]) {
    // The last line is indented content (not a new key) and the block
    // scalar is the last scalar: that line is its last line.
    let last_line = src.rsplit('\n').next().unwrap_or(src);
    if src.ends_with('\n') || !last_line.starts_with([' ', '\t']) || last_line.trim().is_empty() {
        return;
    }
    let last = events.iter_mut().rev().find_map(|(ev, _)| match ev {
        Event::Scalar(s, style, ..) => Some((s, *style)),
        _ => None,
    });
    if let Some((s, ScalarStyle::Literal | ScalarStyle::Folded)) = last
        && s.ends_with('\n')
    {
        s.to_mut().pop();
    }
}

pub fn parse(src: &str) -> Result<Documents, StoreError> {
    parse_capped(src, MAX_NODES)
}

/// [`parse`] with a node cap of `max_nodes` for the whole file.
fn parse_capped(src: &str, max_nodes: usize) -> Result<Documents, StoreError> {
    let mut events = Vec::new();
    for r in Parser::new_from_str(src) {
        let (ev, span) =
            r.map_err(|e| syntax(e.marker().line(), e.marker().col(), e.info().to_string()))?;
        events.push((ev, span));
    }
    fix_block_scalar_at_eof(src, &mut events);
    let char_bytes = if src.is_ascii() {
        None
    } else {
        let mut v: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        v.push(src.len());
        Some(v)
    };
    let byte = |ci: usize| match &char_bytes {
        None => ci,
        Some(v) => v.get(ci).copied().unwrap_or(src.len()),
    };
    unclip_at_eof(src, &mut events);
    let mut spans: Vec<(usize, usize)> = events
        .iter()
        .filter(|(e, _)| matches!(e, Event::Scalar(..)))
        .map(|(_, s)| (byte(s.start.index()), byte(s.end.index())))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort();
    let comments = find_comments(src, &spans);
    let mut b = Builder {
        src,
        events,
        i: 0,
        char_bytes,
        comments,
        next_comment: 0,
        anchors: HashMap::new(),
        expansion: Expansion::new(max_nodes),
    };
    Ok(Documents(b.documents()?))
}

// ---------------------------------------------------------------- emitter

/// Emits documents in yaml.v3's block style with `indent` spaces.
pub fn emit(docs: &Documents, indent: usize) -> String {
    let mut out = String::new();
    for (i, d) in docs.0.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        if d.0.is_empty() {
            out.push_str("{}\n");
        } else {
            emit_map(&mut out, &d.0, 0, indent, false);
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn emit_map(out: &mut String, m: &[MapItem], at: usize, step: usize, mut inline_first: bool) {
    for item in m {
        if !inline_first {
            pad(out, at);
        }
        inline_first = false;
        match item {
            MapItem::Comment(c) => {
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            MapItem::Pair(k, v) => {
                // yaml.v3 writes keys over 128 bytes (an implicit key may
                // not exceed 1024 characters) and multi-line keys as
                // explicit `? key`, styled as values are.
                if k.len() > 128 || k.contains(is_break) {
                    let inner = next_indent(at, step);
                    let hint = (inner == at + step).then_some(step);
                    out.push_str("? ");
                    out.push_str(&scalar_text(k, inner, false, hint));
                    out.push('\n');
                    pad(out, at);
                } else {
                    out.push_str(&scalar_text(k, at + step, true, None));
                }
                out.push(':');
                emit_child(out, v, at, step, true);
            }
        }
    }
}

fn emit_seq(out: &mut String, s: &[SeqItem], at: usize, step: usize, mut inline_first: bool) {
    for item in s {
        let inline = std::mem::replace(&mut inline_first, false);
        match item {
            SeqItem::Comment(c) => {
                pad(out, at);
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            SeqItem::Elem(v) => {
                // A map or list item starts on the dash's line (yaml.v3's
                // compact form). The comments ahead of its first entry (and of
                // its first item's, at any depth) go above the first dash of
                // the line, where the parser reads them back, as this list's.
                if !inline {
                    for c in leading_comments(v) {
                        pad(out, at);
                        out.push('#');
                        out.push_str(c);
                        out.push('\n');
                    }
                    pad(out, at);
                }
                match v {
                    Value::Map(m) if m.pairs().next().is_some() => {
                        out.push_str("- ");
                        let n =
                            m.0.iter()
                                .take_while(|i| matches!(i, MapItem::Comment(_)))
                                .count();
                        emit_map(out, &m.0[n..], at + 2, step, true);
                    }
                    Value::Seq(q) if q.0.iter().any(|i| matches!(i, SeqItem::Elem(_))) => {
                        out.push_str("- ");
                        let n =
                            q.0.iter()
                                .take_while(|i| matches!(i, SeqItem::Comment(_)))
                                .count();
                        emit_seq(out, &q.0[n..], at + 2, step, true);
                    }
                    _ => {
                        out.push('-');
                        emit_child(out, v, at, step, false);
                    }
                }
            }
        }
    }
}

/// The comments `emit_seq` writes above a list item's dash: those before the
/// first key of a map item, or before the first item of a list item (and,
/// that item being a list or map itself, before its first entry, …).
fn leading_comments(mut v: &Value) -> Vec<&String> {
    let mut out = Vec::new();
    loop {
        match v {
            Value::Map(m) if m.pairs().next().is_some() => {
                out.extend(m.0.iter().map_while(|i| match i {
                    MapItem::Comment(c) => Some(c),
                    MapItem::Pair(..) => None,
                }));
                return out;
            }
            Value::Seq(q) if q.0.iter().any(|i| matches!(i, SeqItem::Elem(_))) => {
                for i in &q.0 {
                    match i {
                        SeqItem::Comment(c) => out.push(c),
                        SeqItem::Elem(e) => {
                            v = e;
                            break;
                        }
                    }
                }
            }
            _ => return out,
        }
    }
}

/// Where yaml.v3 puts a block value nested under a key of a map at `at`:
/// the next multiple of the indent step (so a map in a list item at 6
/// has its children at 8, not 10).
fn next_indent(at: usize, step: usize) -> usize {
    step * ((at + step) / step)
}

/// Writes what follows `key:` or `-`.
fn emit_child(out: &mut String, v: &Value, at: usize, step: usize, in_map: bool) {
    // A list item's value goes past its `- `.
    let inner = if in_map {
        next_indent(at, step)
    } else {
        at + 2
    };
    match v {
        Value::Map(m) if !m.0.is_empty() => {
            out.push('\n');
            emit_map(out, &m.0, inner, step, false);
        }
        Value::Seq(s) if !s.0.is_empty() => {
            out.push('\n');
            emit_seq(out, &s.0, inner, step, false);
        }
        Value::Map(_) => out.push_str(" {}\n"),
        Value::Seq(_) => out.push_str(" []\n"),
        leaf => {
            // A block scalar's indentation indicator counts from `at`.
            let hint = (inner == at + step).then_some(step);
            out.push(' ');
            out.push_str(&leaf_text(leaf, inner, hint));
            out.push('\n');
        }
    }
}

fn leaf_text(v: &Value, block_indent: usize, hint: Option<usize>) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => {
            if f.is_nan() {
                ".nan".into()
            } else if f.is_infinite() {
                if *f > 0.0 {
                    ".inf".into()
                } else {
                    "-.inf".into()
                }
            } else if *f == 0.0 && f.is_sign_negative() {
                // yaml.v3 writes `-0`, which re-reads as the integer 0 (and
                // fails the MAC when in clear); ksec keeps it a float.
                "-0.0".into()
            } else {
                // yaml.v3's float encoding: `1.0` is written `1` (and re-reads
                // as an integer, as it does after sops).
                scalar::format_float_g(*f)
            }
        }
        Value::Time(t) => scalar::format_time(t),
        Value::Str(s) => scalar_text(s, block_indent, false, hint),
        Value::Bytes(b) => format!(
            "!!binary {}",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
        Value::Map(_) | Value::Seq(_) => unreachable!("containers are not leaves"),
    }
}

/// How yaml.v3 writes a string (its `stringv` and the emitter's
/// `analyze_scalar` / `select_scalar_style`), so that ksec's files match
/// sops's byte for byte: plain when it re-reads as the same string and has
/// no indicator, a literal block for multi-line text, single-quoted when
/// only the indicators stand in the way, double-quoted otherwise.
/// `block_indent` is where a literal's lines go; `hint` is the indentation
/// indicator that says so to a reader, if one can: yaml.v3 always writes its
/// indent step, which misplaces the text inside lists (sops cannot read
/// that back), so ksec double-quotes those few strings instead.
pub fn scalar_text(s: &str, block_indent: usize, is_key: bool, hint: Option<usize>) -> String {
    let a = Analysis::of(s);
    let plain_ok = resolves_to_str(s) && !is_old_bool(s) && !is_base60_float(s);
    let style = if s.contains('\n') {
        Style::Literal
    } else if plain_ok {
        Style::Plain
    } else {
        Style::Double
    };
    let style = match style {
        Style::Literal
            if !a.block_allowed
                || is_key
                || (hint.is_none() && s.starts_with(|c: char| c == ' ' || is_break(c))) =>
        {
            Style::Double
        }
        Style::Plain if !a.block_plain_allowed => Style::Single,
        other => other,
    };
    let style = match style {
        Style::Single if !a.single_quoted_allowed => Style::Double,
        other => other,
    };
    match style {
        Style::Plain => s.to_string(),
        Style::Single => format!("'{}'", s.replace('\'', "''")),
        Style::Double => double_quoted(s),
        Style::Literal => literal(s, block_indent, hint.unwrap_or(0)),
    }
}

enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// yaml.v3's `analyze_scalar` verdicts (block context, unicode output).
struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `is_printable`, which (checking UTF-8 bytes) takes no
/// character outside the Basic Multilingual Plane: yaml.v3 escapes those.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

impl Analysis {
    fn of(s: &str) -> Analysis {
        if s.is_empty() {
            return Analysis {
                block_plain_allowed: true,
                single_quoted_allowed: true,
                block_allowed: false,
            };
        }
        let chars: Vec<char> = s.chars().collect();
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let (mut line_breaks, mut special, mut tabs) = (false, false, false);
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut prev_space, mut prev_break) = (false, false);
        let mut preceded_by_ws = true;
        for (i, &c) in chars.iter().enumerate() {
            let last = i + 1 == chars.len();
            let followed_by_ws = last || matches!(chars[i + 1], ' ' | '\t');
            if i == 0 {
                match c {
                    '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\''
                    | '"' | '%' | '@' | '`' => block_indicators = true,
                    '?' | ':' | '-' if followed_by_ws => block_indicators = true,
                    _ => {}
                }
            } else {
                match c {
                    ':' if followed_by_ws => block_indicators = true,
                    '#' if preceded_by_ws => block_indicators = true,
                    _ => {}
                }
            }
            if c == '\t' {
                tabs = true;
            } else if !is_printable(c) {
                special = true;
            }
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= last;
                break_space |= prev_break;
                (prev_space, prev_break) = (true, false);
            } else if is_break(c) {
                line_breaks = true;
                leading_break |= i == 0;
                trailing_break |= last;
                space_break |= prev_space;
                (prev_space, prev_break) = (false, true);
            } else {
                (prev_space, prev_break) = (false, false);
            }
            preceded_by_ws = matches!(c, ' ' | '\t') || is_break(c);
        }
        let no_plain = leading_space
            || leading_break
            || trailing_space
            || trailing_break
            || break_space
            || space_break
            || tabs
            || special
            || line_breaks
            || block_indicators;
        Analysis {
            block_plain_allowed: !no_plain,
            single_quoted_allowed: !(break_space || space_break || tabs || special),
            block_allowed: !(trailing_space || space_break || special),
        }
    }
}

fn resolves_to_str(s: &str) -> bool {
    !s.is_empty() && matches!(scalar::resolve_plain(s), Some(Value::Str(_))) && s != "<<"
}

/// YAML 1.1 booleans: yaml.v3 quotes them for older readers.
fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// YAML 1.1 base-60 floats (`1:20`), which yaml.v3 quotes:
/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int_part, frac) = match body.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (body, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = int_part.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let sexa: Vec<&str> = parts.collect();
    head_ok
        && !sexa.is_empty()
        && sexa.iter().all(|p| match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        })
}

/// A literal block as yaml.v3 writes it: `|`, the indentation indicator
/// when the text starts with a space or a break, then the chomping
/// indicator (`-` no final break, none for one, `+` for more).
fn literal(s: &str, block_indent: usize, hint: usize) -> String {
    let mut out = String::from("|");
    if s.starts_with(|c: char| c == ' ' || is_break(c)) {
        out.push_str(&hint.to_string());
    }
    let body = s.trim_end_matches(is_break);
    let trailing = s.len() - body.len();
    out.push_str(if trailing == 0 {
        "-"
    } else if trailing == 1 && !body.is_empty() {
        ""
    } else {
        "+"
    });
    out.push('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', block_indent));
            out.push_str(line);
        }
    }
    out
}

/// yaml.v3's double-quoted form: its short escapes, else `\xXX`, `\uXXXX`
/// or `\UXXXXXXXX` (upper-case hex) for what it does not print as is.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '\0' => '0',
            '\u{7}' => 'a',
            '\u{8}' => 'b',
            '\t' => 't',
            '\n' => 'n',
            '\u{b}' => 'v',
            '\u{c}' => 'f',
            '\r' => 'r',
            '\u{1b}' => 'e',
            '"' => '"',
            '\\' => '\\',
            '\u{85}' => 'N',
            '\u{2028}' => 'L',
            '\u{2029}' => 'P',
            c if is_printable(c) => {
                out.push(c);
                continue;
            }
            c => {
                let n = c as u32;
                out.push_str(&match n {
                    0..=0xff => format!("\\x{n:02X}"),
                    0x100..=0xffff => format!("\\u{n:04X}"),
                    _ => format!("\\U{n:08X}"),
                });
                continue;
            }
        };
        out.push('\\');
        out.push(short);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn block_scalar_on_the_last_line_keeps_no_line_break_it_does_not_have() {
        let get = |src: &str| {
            super::parse(src).unwrap().0[0]
                .get("m")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap()
        };
        assert_eq!(get("m: |\n  multi\n  line"), "multi\nline");
        assert_eq!(get("m: |\n  multi\n  line\n"), "multi\nline\n");
        assert_eq!(get("m: |+\n  a\n  b"), "a\nb");
        assert_eq!(get("m: >\n  a\n  b"), "a b");
        assert_eq!(get("m: |\n  a\nn: x"), "a\n", "not the last line");
        assert_eq!(get("m: |\n  a\n# c"), "a\n", "a comment follows");
    }

    use super::*;

    fn rt(src: &str) -> String {
        emit(&parse(src).unwrap(), 4)
    }

    #[test]
    fn long_keys_are_written_explicitly_and_read_back() {
        let long = "k".repeat(200);
        let src = format!("a: 1\n{long}:\n    b: 2\nl:\n    - {long}x: 3\n");
        let docs = parse(&src).unwrap();
        let out = emit(&docs, 4);
        assert!(out.contains(&format!("? {long}\n:\n")), "{out}");
        assert_eq!(parse(&out).unwrap(), docs);
    }

    #[test]
    fn keeps_order_comments_and_types() {
        let src = "# top\nb: 1\na:\n  # inner\n  x: \"007\"\n  y: [1, two]\nlist:\n- a: 1\n  b: 2\n- plain\n";
        let docs = parse(src).unwrap();
        let out = emit(&docs, 4);
        assert_eq!(parse(&out).unwrap(), docs);
        assert!(
            out.starts_with("# top\nb: 1\na:\n    # inner\n    x: \"007\"\n"),
            "{out}"
        );
    }

    #[test]
    fn multi_document_and_block_scalars() {
        let src = "a: |\n  line1\n  line2\n---\nb: |-\n  x\n  y\n";
        let docs = parse(src).unwrap();
        assert_eq!(docs.0.len(), 2);
        assert_eq!(
            docs.0[0].get("a"),
            Some(&Value::Str("line1\nline2\n".into()))
        );
        assert_eq!(parse(&rt(src)).unwrap(), docs);
    }

    #[test]
    fn quoting_round_trips() {
        for s in [
            "yes",
            "007",
            "a: b",
            "- x",
            " lead",
            "trail ",
            "#x",
            "true",
            "1.5",
            "2024-01-01",
            "",
            "null",
            "x\ty",
            "\u{1}",
            "é: ü",
            "a\n\n",
        ] {
            let mut m = Map::default();
            m.insert("k", Value::Str(s.to_string()));
            let docs = Documents(vec![m]);
            let out = emit(&docs, 4);
            assert_eq!(parse(&out).unwrap(), docs, "{s:?} -> {out}");
        }
    }

    /// The billion-laughs file: 540 bytes, 10^9 leaves expanded.
    fn lol() -> String {
        let mut s = String::from(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  a0: &a0 x\n",
        );
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(",");
            s.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
        }
        s
    }

    fn nodes(v: &Value) -> usize {
        1 + match v {
            Value::Map(m) => m.pairs().map(|(_, v)| 1 + nodes(v)).sum(),
            Value::Seq(s) => s.elems().map(nodes).sum(),
            _ => 0,
        }
    }

    #[test]
    fn alias_bomb_is_refused_before_it_is_built() {
        let src = lol();
        assert_eq!(src.len(), 540);
        let e = parse(&src).unwrap_err();
        let StoreError::Limit { doc, line, .. } = &e else {
            panic!("{e}");
        };
        assert_eq!(*doc, 0);
        assert!(*line >= 6, "{e}");
        assert!(e.to_string().contains("excessive aliasing"), "{e}");
        // In a later document the error names that document.
        let e = parse(&format!("a: 1\n---\n{src}")).unwrap_err();
        assert!(matches!(e, StoreError::Limit { doc: 1, .. }), "{e}");
    }

    #[test]
    fn alias_bomb_in_keys_and_long_scalars_is_refused() {
        // A long anchored scalar counts by its bytes, not as one node.
        let big = "x".repeat(1 << 20);
        let refs = vec!["*s"; 40].join(", ");
        let src = format!("a: &s {big}\nb: [{refs}]\n");
        let e = parse(&src).unwrap_err();
        assert!(matches!(e, StoreError::Limit { .. }), "{e}");
    }

    #[test]
    fn ordinary_aliasing_is_accepted() {
        // yaml.v3 accepts this (at most 100 alias nodes), and so must ksec.
        let mut src = String::from("base: &b {a: 1, b: 2, c: 3, d: 4}\n");
        for i in 0..20 {
            src.push_str(&format!("k{i}: *b\n"));
        }
        let docs = parse(&src).unwrap();
        assert_eq!(docs.0[0].get("k19"), docs.0[0].get("base"));
        // Over 100 alias nodes is fine while they are under 99% of the document.
        let mut src = String::from("base: &b {a: 1, b: 2}\n");
        src.push_str(&(0..600).map(|i| format!("p{i}: 1\n")).collect::<String>());
        src.push_str(&(0..200).map(|i| format!("k{i}: *b\n")).collect::<String>());
        assert!(parse(&src).is_ok());
    }

    #[test]
    fn alias_ratio_follows_yaml_v3() {
        assert_eq!(allowed_alias_ratio(1000), 0.99);
        assert_eq!(allowed_alias_ratio(ALIAS_RATIO_HIGH), 0.10);
        let mid = allowed_alias_ratio((ALIAS_RATIO_LOW + ALIAS_RATIO_HIGH) / 2);
        assert!((mid - 0.545).abs() < 1e-9, "{mid}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Nested anchors and aliases (in lists, maps and keys), padded with
        /// plain nodes: either parsed with a node count bounded by the
        /// source size, or refused with the limit error, never expanded.
        #[test]
        fn alias_expansion_is_bounded(
            levels in 1usize..10,
            fanout in 1usize..12,
            width in 0usize..64,
            as_maps in proptest::prelude::any::<bool>(),
            pad in 0usize..1500,
        ) {
            let mut src = format!("k0: &a0 {}\n", "x".repeat(width.max(1)));
            src.push_str("kk: &kk key\n");
            for i in 1..=levels {
                let refs: Vec<String> = (0..fanout)
                    .map(|j| if as_maps { format!("m{j}: *a{}", i - 1) } else { format!("*a{}", i - 1) })
                    .collect();
                let (open, close) = if as_maps { ('{', '}') } else { ('[', ']') };
                src.push_str(&format!("k{i}: &a{i} {open}{}{close}\n", refs.join(", ")));
            }
            src.push_str(&format!("keys: {{*kk : {}}}\n", levels));
            src.push_str(&format!("pad: [{}]\n", vec!["1"; pad].join(",")));
            match parse(&src) {
                Ok(docs) => {
                    let n: usize = docs.0.iter().map(|d| nodes(&Value::Map(d.clone()))).sum();
                    proptest::prop_assert!(n <= 1000 + 100 * src.len(), "{n} nodes from {} bytes", src.len());
                }
                Err(e) => proptest::prop_assert!(matches!(e, StoreError::Limit { doc: 0, .. }), "{e}"),
            }
        }
    }

    #[test]
    fn node_count_is_capped_per_file() {
        let src = "a: [1, 2, 3]\n---\nb: {c: 1}\n";
        // 5 nodes in document 0 (a, the list, 3 items), 4 in document 1.
        assert!(parse_capped(src, 9).is_ok());
        let e = parse_capped(src, 8).unwrap_err();
        assert!(matches!(e, StoreError::Limit { doc: 1, .. }), "{e}");
        assert!(e.to_string().contains("more than 8 YAML nodes"), "{e}");
    }

    #[test]
    fn anchored_copies_count_toward_the_node_cap() {
        // 4 nodes built; the anchors keep copies of 3 (x) and 2 (y) more.
        let src = "a: &x [&y [1]]\n";
        assert!(parse_capped(src, 9).is_ok());
        let e = parse_capped(src, 8).unwrap_err();
        assert!(matches!(e, StoreError::Limit { doc: 0, .. }), "{e}");
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        // 200k keys: quadratic duplicate checks took minutes here.
        let n = 200_000;
        let mut src: String = (0..n).map(|i| format!("key{i}: v\n")).collect();
        let docs = parse(&src).unwrap();
        assert_eq!(docs.0[0].pairs().count(), n);
        src.push_str("key123: again\n");
        let e = parse(&src).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("duplicate key \"key123\""), "{msg}");
        assert!(msg.contains(&format!("line {}", n + 1)), "{msg}");
    }

    #[test]
    fn block_scalar_at_eof_keeps_only_the_breaks_that_are_there() {
        for (src, want) in [
            ("m: |\n  a\n  b", "a\nb"),
            ("m: >\n  a\n  b", "a b"),
            ("m: |+\n  a\n  b", "a\nb"),
            ("m: |-\n  a\n  b", "a\nb"),
            ("m: |\n  a\n  b\n  ", "a\nb\n"),
            ("m: |+\n  a\n  b\n  ", "a\nb\n"),
            ("m: |\n  a\n  b  ", "a\nb  "),
            ("m: |\n  a\n  b\n", "a\nb\n"),
            ("m: |+\n  a\n\n", "a\n\n"),
            ("l:\n  - |\n    a\n    b", ""),
        ] {
            let d = parse(src).unwrap();
            let got = match d.0[0].get("m") {
                Some(v) => v.clone(),
                None => match d.0[0].get("l") {
                    Some(Value::Seq(s)) => match &s.0[0] {
                        SeqItem::Elem(v) => v.clone(),
                        _ => unreachable!(),
                    },
                    _ => unreachable!(),
                },
            };
            let want = if want.is_empty() { "a\nb" } else { want };
            assert_eq!(got, Value::Str(want.into()), "{src:?}");
        }
    }

    #[test]
    fn yaml_v3_styles_read_back() {
        for s in [
            "x: y",
            "'q'",
            "\"dq\"",
            "  lead",
            "trail  ",
            "\nlead",
            "  lead\nml",
            "\n",
            "\n\n",
            "a\n\n\n",
            "h\u{1F510}",
            "a\u{85}b",
            "a\tb\nc\n",
            "line  \nnext",
            "multi\nkey",
            "a'b",
            "1:20",
            "-",
            "? q",
            "\u{feff}x",
            "a\r\nb",
        ] {
            let v = Value::Str(s.to_string());
            let mut top = Map::default();
            top.insert("k", v.clone());
            top.insert(s, Value::Int(1));
            let mut item = Map::default();
            item.insert("k", v.clone());
            item.insert("n", Value::Map(top.clone()));
            let mut root = top.clone();
            root.insert(
                "l",
                Value::Seq(Seq(vec![SeqItem::Elem(Value::Map(item)), SeqItem::Elem(v)])),
            );
            let docs = Documents(vec![root]);
            for step in [2, 4] {
                let out = emit(&docs, step);
                assert_eq!(parse(&out).unwrap(), docs, "{s:?}\n{out}");
            }
        }
    }

    #[test]
    fn errors_carry_the_line() {
        let e = parse("a: 1\nb: [\n").unwrap_err();
        assert!(matches!(e, StoreError::Syntax { .. }));
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
