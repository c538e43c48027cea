//! Git access through gix (pure Rust): the staged index blobs for
//! `check --staged`, and every blob of a history for `scan --history`.
//!
//! The staged check reads blobs from the object database by the index's
//! ids, never the working tree: a file staged as plaintext and encrypted
//! only on disk afterwards is still judged as plaintext (case G01).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use super::{Blob, Finding, GuardError, Options, Source};

fn gerr(e: impl std::fmt::Display) -> GuardError {
    GuardError::Git(e.to_string())
}

/// The repository containing `start`.
pub fn open(start: &Path) -> Result<gix::Repository, GuardError> {
    let mut repo = gix::discover(start).map_err(gerr)?;
    repo.object_cache_size_if_unset(16 << 20);
    Ok(repo)
}

/// The working tree root (where `.ksec.yaml`, `.sops.yaml` and `recipients/` live).
pub fn workdir(repo: &gix::Repository) -> Option<PathBuf> {
    repo.workdir().map(Path::to_path_buf)
}

/// One tree's entries as (kind, name, id), owned so the tree buffer can go.
fn tree_entries(
    repo: &gix::Repository,
    tree: ObjectId,
) -> Result<Vec<(EntryKind, String, ObjectId)>, GuardError> {
    let t = repo.find_tree(tree).map_err(gerr)?;
    Ok(t.decode()
        .map_err(gerr)?
        .entries
        .iter()
        .map(|e| {
            (
                e.mode.kind(),
                e.filename.to_str_lossy().into_owned(),
                e.oid.to_owned(),
            )
        })
        .collect())
}

/// Every blob path → id of a tree, recursively (submodules skipped). Also
/// the controller's Git source.
pub(crate) fn tree_map(
    repo: &gix::Repository,
    tree: ObjectId,
    prefix: &str,
    out: &mut HashMap<String, ObjectId>,
) -> Result<(), GuardError> {
    let entries = tree_entries(repo, tree)?;
    for (kind, name, id) in entries {
        let p = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        match kind {
            EntryKind::Tree => tree_map(repo, id, &p, out)?,
            EntryKind::Commit => {}
            _ => {
                out.insert(p, id);
            }
        }
    }
    Ok(())
}

/// Finds what the index shares with HEAD without reading every tree, as git
/// does: a folder whose cache-tree entry (the index's TREE extension) is valid
/// and equals HEAD's tree id holds no staged change. Blob ids of the other
/// folders go to `head`.
fn unchanged_dirs(
    repo: &gix::Repository,
    cache: Option<&gix::index::extension::Tree>,
    head_tree: ObjectId,
    prefix: &str,
    head: &mut HashMap<String, ObjectId>,
    clean: &mut HashSet<String>,
) -> Result<(), GuardError> {
    let Some(c) = cache else {
        return tree_map(repo, head_tree, prefix, head);
    };
    if c.num_entries.is_some() && c.id == head_tree {
        clean.insert(prefix.to_string());
        return Ok(());
    }
    let entries = tree_entries(repo, head_tree)?;
    for (kind, name, id) in entries {
        let p = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match kind {
            EntryKind::Tree => {
                let child = c
                    .children
                    .iter()
                    .find(|ch| ch.name.as_slice() == name.as_bytes());
                unchanged_dirs(repo, child, id, &p, head, clean)?;
            }
            EntryKind::Commit => {}
            _ => {
                head.insert(p, id);
            }
        }
    }
    Ok(())
}

fn in_clean_dir(path: &str, clean: &HashSet<String>) -> bool {
    if clean.is_empty() {
        return false;
    }
    if clean.contains("") {
        return true;
    }
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        if clean.contains(p) {
            return true;
        }
    }
    false
}

/// Reads other files from the index (kustomization cross-references).
pub struct IndexSource {
    repo: gix::ThreadSafeRepository,
    ids: HashMap<String, ObjectId>,
}

impl Source for IndexSource {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let id = self.ids.get(path)?;
        let repo = self.repo.to_thread_local();
        let mut b = repo.find_blob(*id).ok()?;
        Some(b.take_data())
    }
}

/// The blobs a commit would add or change: index entries (stage 0) whose id
/// differs from HEAD's tree. Deletions add nothing and are not returned.
pub fn staged(repo: &gix::Repository) -> Result<(Vec<Blob>, IndexSource), GuardError> {
    let index = repo.index_or_empty().map_err(gerr)?;
    let mut head = HashMap::new();
    let mut clean = HashSet::new();
    let head_tree = repo.head_tree_id_or_empty().map_err(gerr)?.detach();
    if head_tree != ObjectId::empty_tree(repo.object_hash()) {
        unchanged_dirs(repo, index.tree(), head_tree, "", &mut head, &mut clean)?;
    }
    let mut blobs = Vec::new();
    let mut ids = HashMap::new();
    for e in index.entries() {
        if e.stage() != gix::index::entry::Stage::Unconflicted {
            continue;
        }
        if e.mode == gix::index::entry::Mode::COMMIT || e.mode == gix::index::entry::Mode::DIR {
            continue;
        }
        if e.flags.contains(gix::index::entry::Flags::INTENT_TO_ADD) {
            continue;
        }
        let path = e.path(&index).to_str_lossy().into_owned();
        ids.insert(path.clone(), e.id);
        if in_clean_dir(&path, &clean) || head.get(&path) == Some(&e.id) {
            continue;
        }
        let mut b = repo.find_blob(e.id).map_err(gerr)?;
        blobs.push(Blob {
            path,
            bytes: b.take_data(),
            symlink: e.mode == gix::index::entry::Mode::SYMLINK,
        });
    }
    let src = IndexSource {
        repo: repo.clone().into_sync(),
        ids,
    };
    Ok((blobs, src))
}

/// One blob of a history, at the first commit (oldest first) that has it.
#[derive(Clone, Debug)]
pub struct HistoryBlob {
    pub commit: ObjectId,
    pub path: String,
    pub id: ObjectId,
    pub symlink: bool,
}

/// The commits of `range` (`A..B`, a single revision meaning everything
/// reachable from it, or HEAD), oldest first.
pub fn commits(repo: &gix::Repository, range: Option<&str>) -> Result<Vec<ObjectId>, GuardError> {
    let spec = range.unwrap_or("HEAD");
    let parsed = repo.rev_parse(spec).map_err(gerr)?.detach();
    let (tips, hidden): (Vec<ObjectId>, Vec<ObjectId>) = match parsed {
        gix::revision::plumbing::Spec::Include(id) => (vec![id], vec![]),
        gix::revision::plumbing::Spec::Range { from, to } => (vec![to], vec![from]),
        gix::revision::plumbing::Spec::Merge { theirs, ours } => {
            let base = repo.merge_base(theirs, ours).map_err(gerr)?;
            (
                vec![theirs, ours],
                base.map(|b| b.detach()).into_iter().collect(),
            )
        }
        other => {
            return Err(GuardError::Git(format!(
                "unsupported revision range {other} (use A..B, A...B or a single revision)"
            )));
        }
    };
    let walk = repo
        .rev_walk(tips)
        .with_hidden(hidden)
        .all()
        .map_err(gerr)?;
    let mut ids = Vec::new();
    for info in walk {
        ids.push(info.map_err(gerr)?.id);
    }
    ids.reverse();
    Ok(ids)
}

/// Every distinct blob in the commits, with the first commit and path it
/// appeared at. Trees seen before are skipped whole, so the cost follows
/// what changed, not the size of each snapshot.
pub fn history_blobs(
    repo: &gix::Repository,
    commits: &[ObjectId],
    warnings: &mut Vec<String>,
) -> Result<Vec<HistoryBlob>, GuardError> {
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let mut seen_blobs: HashSet<ObjectId> = HashSet::new();
    let mut out = Vec::new();
    for c in commits {
        let commit = repo.find_commit(*c).map_err(gerr)?;
        let tree = commit.tree_id().map_err(gerr)?.detach();
        let mut stack = vec![(tree, String::new())];
        while let Some((t, prefix)) = stack.pop() {
            if !seen_trees.insert(t) {
                continue;
            }
            let Some(tree) = find_present(repo, t)? else {
                warnings.push(missing_warning(c, &prefix, "tree"));
                continue;
            };
            let tree = tree.try_into_tree().map_err(gerr)?;
            let decoded = tree.decode().map_err(gerr)?;
            for e in &decoded.entries {
                let name = e.filename.to_str_lossy();
                let p = if prefix.is_empty() {
                    name.into_owned()
                } else {
                    format!("{prefix}/{name}")
                };
                let id = e.oid.to_owned();
                match e.mode.kind() {
                    EntryKind::Tree => stack.push((id, p)),
                    EntryKind::Commit => {}
                    kind => {
                        if seen_blobs.insert(id) {
                            out.push(HistoryBlob {
                                commit: *c,
                                path: p,
                                id,
                                symlink: kind == EntryKind::Link,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Reads other files from one commit's tree.
struct CommitSource<'r> {
    repo: &'r gix::Repository,
    commit: ObjectId,
}

impl Source for CommitSource<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let tree = self.repo.find_commit(self.commit).ok()?.tree().ok()?;
        let entry = tree.lookup_entry_by_path(path).ok()??;
        let mut b = self.repo.find_blob(entry.object_id()).ok()?;
        Some(b.take_data())
    }
}

/// What a history scan found, and what it could not read.
#[derive(Debug, Default)]
pub struct HistoryScan {
    pub findings: Vec<Finding>,
    pub commits: usize,
    pub blobs: usize,
    /// Objects a partial clone lacks, and ranges clipped at a shallow
    /// boundary: reported (commit and path), never fatal.
    pub warnings: Vec<String>,
}

/// Judges every blob of the history in parallel; findings carry the commit
/// and say the credential must be rotated (it is in the history already).
pub fn scan_history(
    repo: &gix::Repository,
    range: Option<&str>,
    opts: &Options,
) -> Result<HistoryScan, GuardError> {
    use rayon::prelude::*;
    let mut warnings = Vec::new();
    let commits = commits_clipped(repo, range, &mut warnings)?;
    let blobs = history_blobs(repo, &commits, &mut warnings)?;
    let ts = repo.clone().into_sync();
    let results: Result<Vec<Result<Vec<Finding>, String>>, GuardError> = blobs
        .par_iter()
        .filter(|hb| !opts.config.is_excluded(&hb.path))
        .map_init(
            || ts.to_thread_local(),
            |r, hb| {
                let Some(obj) = find_present(r, hb.id)? else {
                    return Ok(Err(missing_warning(&hb.commit, &hb.path, "blob")));
                };
                let blob = Blob {
                    path: hb.path.clone(),
                    bytes: obj.detach().data,
                    symlink: hb.symlink,
                };
                if blob.symlink {
                    return Ok(Ok(vec![]));
                }
                let src = CommitSource {
                    repo: r,
                    commit: hb.commit,
                };
                let hex = hb.commit.to_hex().to_string();
                let tmpl = template_in_commit(&blob, &src);
                let tmpl_opts;
                let opts = match &tmpl {
                    Some(t) => {
                        tmpl_opts = Options {
                            config: opts.config.clone(),
                            verify: opts.verify,
                            policy: Some(t),
                            max_file_size: opts.max_file_size,
                        };
                        &tmpl_opts
                    }
                    None => opts,
                };
                Ok(Ok(super::detect::check_blob(&blob, &src, opts)
                    .into_iter()
                    .map(|mut f| {
                        f.commit = Some(hex.clone());
                        history_advice(&mut f);
                        f
                    })
                    .collect()))
            },
        )
        .collect();
    let mut all = Vec::new();
    for r in results? {
        match r {
            Ok(f) => all.extend(f),
            Err(w) => warnings.push(w),
        }
    }
    super::finish(&mut all);
    Ok(HistoryScan {
        findings: all,
        commits: commits.len(),
        blobs: blobs.len(),
        warnings,
    })
}

/// History skips path policy, but a Secret under a templated `.sops.yaml`
/// (as that commit had it) is still a template: judged as `check` judges it.
struct CommitTemplate {
    path: String,
    why: String,
}

impl super::PathPolicy for CommitTemplate {
    fn requirement(&self, _: &str) -> Option<super::config::Requirement> {
        None
    }

    fn template(&self, path: &str) -> Option<String> {
        (path == self.path).then(|| self.why.clone())
    }
}

/// The nearest `.sops.yaml` above a Secret-looking blob in its commit, when
/// its matching rule is a template ([`super::config::template_rule`]).
fn template_in_commit(blob: &Blob, src: &CommitSource) -> Option<CommitTemplate> {
    use super::Source;
    if !super::lines::looks_like_secret(&String::from_utf8_lossy(&blob.bytes)) {
        return None;
    }
    let mut dir = super::parent_of(&blob.path);
    loop {
        let p = if dir.is_empty() {
            ".sops.yaml".to_string()
        } else {
            format!("{dir}/.sops.yaml")
        };
        if let Some(bytes) = src.read(&p) {
            let cfg = crate::recipients::SopsConfig::parse(Path::new(&p), &bytes).ok()?;
            let why = super::config::template_rule(&cfg, Path::new(&blob.path))?;
            return Some(CommitTemplate {
                path: blob.path.clone(),
                why,
            });
        }
        if dir.is_empty() {
            return None;
        }
        dir = super::parent_of(dir);
    }
}

/// An object, or `None` when this clone does not have it (a partial clone's
/// filtered blob or tree, a pruned object); other read errors stay errors.
fn find_present(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<Option<gix::Object<'_>>, GuardError> {
    repo.try_find_object(id).map_err(gerr)
}

fn missing_warning(commit: &ObjectId, path: &str, what: &str) -> String {
    let path = if path.is_empty() { "(root)" } else { path };
    format!(
        "commit {}: {path}: {what} not in this clone (partial clone or missing object), not scanned (a clone without --filter scans it)",
        commit.to_hex_with_len(12)
    )
}

/// [`commits`], but a range whose start lies beyond a shallow clone's
/// boundary is clipped there (with a warning) instead of failing, and a walk
/// that reaches the boundary says what it could not see.
pub fn commits_clipped(
    repo: &gix::Repository,
    range: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ObjectId>, GuardError> {
    let boundary: HashSet<ObjectId> = repo
        .shallow_commits()
        .map_err(gerr)?
        .map(|c| c.iter().copied().collect())
        .unwrap_or_default();
    let ids = match commits(repo, range) {
        Ok(ids) => ids,
        Err(e) if !boundary.is_empty() => {
            let Some((from, to)) = range.and_then(split_range) else {
                return Err(e);
            };
            if !beyond_boundary(repo, from) {
                return Err(e);
            }
            let to = if to.is_empty() { "HEAD" } else { to };
            let ids = commits(repo, Some(to))?;
            warnings.push(format!(
                "{from:?} is beyond this shallow clone's boundary: the range is clipped to everything {to} reaches in the clone (`git fetch --unshallow` for the full range)"
            ));
            return Ok(ids);
        }
        Err(e) => return Err(e),
    };
    let reached: Vec<String> = ids
        .iter()
        .filter(|c| boundary.contains(*c))
        .map(|c| c.to_hex_with_len(12).to_string())
        .collect();
    if !reached.is_empty() {
        warnings.push(format!(
            "shallow clone: the scan stops at boundary commit(s) {}; older history is not in this clone (`git fetch --unshallow` to scan it)",
            reached.join(", ")
        ));
    }
    Ok(ids)
}

/// Whether a revision that does not resolve names history a shallow clone
/// lacks: an ancestor (`X~N`, `X^`) of a revision that resolves, or a full
/// commit id that is not here. A typo stays an error.
fn beyond_boundary(repo: &gix::Repository, rev: &str) -> bool {
    if repo.rev_parse_single(rev).is_ok() {
        return false;
    }
    let base = rev.trim_end_matches(|c: char| c == '~' || c == '^' || c.is_ascii_digit());
    if base.len() < rev.len() && !base.is_empty() && repo.rev_parse_single(base).is_ok() {
        return true;
    }
    rev.len() == repo.object_hash().len_in_hex() && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// `A..B` / `A...B` → (A, B); `None` for a single revision.
fn split_range(spec: &str) -> Option<(&str, &str)> {
    spec.split_once("...").or_else(|| spec.split_once(".."))
}

/// A finding in history is already leaked: encrypting the file now does
/// not remove it from the commits, so the fix is to rotate the credential.
/// Structural sops findings (metadata, grammar, encodings) leak nothing.
fn history_advice(f: &mut Finding) {
    use super::RuleId::*;
    static ENCRYPT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = ENCRYPT.get_or_init(|| {
        regex::Regex::new(r"[;,]?\s*(?:\(run |run |encrypt the file \()?`ksec encrypt -i [^`]*`\)?")
            .expect("static regex")
    });
    let structural = matches!(
        f.rule_id,
        EncMalformed
            | SopsMetadataMissing
            | SopsMetadataNotFirst
            | SopsMetadataInvalid
            | SopsMetadataMismatch
            | SopsMacMissing
            | SopsNoRecipients
            | SopsVersionMissing
            | VerifyFailed
            | MacNotVerified
            | CrlfLineEndings
            | ByteOrderMark
            | Utf16
            | Symlink
            | AllowWithoutReason
    );
    if structural || f.severity != super::Severity::Error {
        return;
    }
    let m = re.replace_all(&f.message, "").trim_end().to_string();
    f.message = format!(
        "{m}; it is in the Git history already: rotate the credential (encrypting the file now does not remove it from past commits)"
    );
}
