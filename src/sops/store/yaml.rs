//! YAML store: multi-document, comments kept (and encrypted), key order kept.
//!
//! Parsing uses saphyr-parser's event stream with source spans. The parser has
//! no comment events, so comments are found in the source text between
//! scalar spans and attached to the container open at that point, with an
//! indentation rule for comments that trail a nested block.

use std::collections::HashMap;

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

struct Builder<'s> {
    src: &'s str,
    events: Vec<(Event<'s>, Span)>,
    i: usize,
    /// char index → byte offset (saphyr markers count characters).
    char_bytes: Option<Vec<usize>>,
    comments: Vec<Comment>,
    next_comment: usize,
    anchors: HashMap<usize, Value>,
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
                    let (ev, span) = self.next()?;
                    let mut root = match ev {
                        Event::MappingStart(anchor, _) => {
                            let m = self.mapping(span, 0)?;
                            if anchor > 0 {
                                self.anchors.insert(anchor, Value::Map(m.clone()));
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

    fn node(&mut self, ev: Event<'s>, span: Span) -> Result<Value, StoreError> {
        match ev {
            Event::Scalar(s, style, anchor, tag) => {
                let v = scalar_value(
                    &s,
                    style,
                    tag.as_deref()
                        .map(|t| (t.handle.as_str(), t.suffix.as_str())),
                )
                .map_err(|m| syntax(span.start.line(), span.start.col(), m))?;
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().ok_or_else(|| {
                syntax(
                    span.start.line(),
                    span.start.col(),
                    "alias to an unknown anchor",
                )
            }),
            Event::SequenceStart(anchor, _) => {
                let s = self.sequence(span)?;
                let v = Value::Seq(s);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let m = self.mapping(span, span.start.col())?;
                let v = Value::Map(m);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            _ => Err(syntax(
                span.start.line(),
                span.start.col(),
                "unexpected YAML event",
            )),
        }
    }

    fn mapping(&mut self, _start: Span, _col: usize) -> Result<Map, StoreError> {
        let mut m = Map::default();
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
                    s.into_owned()
                }
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some(Value::Str(s)) => s.clone(),
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
            if m.contains_key(&key) {
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
    let mut events = Vec::new();
    for r in Parser::new_from_str(src) {
        let (ev, span) =
            r.map_err(|e| syntax(e.marker().line(), e.marker().col(), e.info().to_string()))?;
        events.push((ev, span));
    }
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
                // yaml.v3 writes keys over 128 bytes as explicit `? key`
                // (an implicit key may not exceed 1024 characters).
                if k.len() > 128 {
                    out.push_str("? ");
                    out.push_str(&scalar_text(k, at + step, true));
                    out.push('\n');
                    pad(out, at);
                } else {
                    out.push_str(&scalar_text(k, at + step, true));
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

/// Writes what follows `key:` or `-`.
fn emit_child(out: &mut String, v: &Value, at: usize, step: usize, in_map: bool) {
    match v {
        Value::Map(m) if !m.0.is_empty() => {
            out.push('\n');
            emit_map(
                out,
                &m.0,
                if in_map { at + step } else { at + 2 },
                step,
                false,
            );
        }
        Value::Seq(s) if !s.0.is_empty() => {
            out.push('\n');
            emit_seq(
                out,
                &s.0,
                if in_map { at + step } else { at + 2 },
                step,
                false,
            );
        }
        Value::Map(_) => out.push_str(" {}\n"),
        Value::Seq(_) => out.push_str(" []\n"),
        leaf => {
            out.push(' ');
            out.push_str(&leaf_text(leaf, at + step));
            out.push('\n');
        }
    }
}

fn leaf_text(v: &Value, block_indent: usize) -> String {
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
            } else {
                // Debug always keeps a '.' or an exponent, so it re-reads as a float.
                format!("{f:?}")
            }
        }
        Value::Time(t) => scalar::format_time(t),
        Value::Str(s) => scalar_text(s, block_indent, false),
        Value::Bytes(b) => format!(
            "!!binary {}",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
        Value::Map(_) | Value::Seq(_) => unreachable!("containers are not leaves"),
    }
}

/// Plain when it re-reads as the same string, a literal block for
/// multi-line text, double-quoted otherwise.
pub fn scalar_text(s: &str, block_indent: usize, is_key: bool) -> String {
    if !is_key && s.contains('\n') && literal_ok(s) {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let mut out = format!("|{chomp}\n");
        let body = s.strip_suffix('\n').unwrap_or(s);
        let body = if chomp == "+" {
            s.strip_suffix('\n').unwrap_or(s)
        } else {
            body
        };
        for (i, line) in body.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if !line.is_empty() {
                out.extend(std::iter::repeat_n(' ', block_indent));
                out.push_str(line);
            }
        }
        return out;
    }
    if plain_ok(s) {
        return s.to_string();
    }
    double_quoted(s)
}

fn literal_ok(s: &str) -> bool {
    let first = s.split('\n').next().unwrap_or("");
    !first.starts_with([' ', '\t'])
        && !s.starts_with('\n')
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.contains('\u{feff}')
        && s.split('\n').all(|l| l.is_empty() || !l.trim().is_empty())
}

fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    if !matches!(scalar::resolve_plain(s), Some(Value::Str(_))) {
        return false;
    }
    // YAML 1.1 booleans: yaml.v3 quotes them for older readers.
    if matches!(
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
    ) {
        return false;
    }
    let first = s.chars().next().unwrap();
    if "[]{},#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && (s.len() == 1 || s[1..].starts_with([' ', '\t'])) {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.contains(":\t") {
        return false;
    }
    // base-60 floats (1:20) resolve to numbers in YAML 1.1.
    if s.contains(':')
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == ':' || c == '.' || c == '_')
    {
        return false;
    }
    s.chars()
        .all(|c| !c.is_control() && c != '\u{feff}' && c != '\u{2028}' && c != '\u{2029}')
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
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

    #[test]
    fn errors_carry_the_line() {
        let e = parse("a: 1\nb: [\n").unwrap_err();
        assert!(matches!(e, StoreError::Syntax { .. }));
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
