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
            let tree = repo.find_tree(t).map_err(gerr)?;
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

/// Judges every blob of the history in parallel; findings carry the commit.
pub fn scan_history(
    repo: &gix::Repository,
    range: Option<&str>,
    opts: &Options,
) -> Result<(Vec<Finding>, usize, usize), GuardError> {
    use rayon::prelude::*;
    let commits = commits(repo, range)?;
    let blobs = history_blobs(repo, &commits)?;
    let ts = repo.clone().into_sync();
    let results: Result<Vec<Vec<Finding>>, GuardError> = blobs
        .par_iter()
        .filter(|hb| !opts.config.is_excluded(&hb.path))
        .map_init(
            || ts.to_thread_local(),
            |r, hb| {
                let mut b = r.find_blob(hb.id).map_err(gerr)?;
                let blob = Blob {
                    path: hb.path.clone(),
                    bytes: b.take_data(),
                    symlink: hb.symlink,
                };
                if blob.symlink {
                    return Ok(vec![]);
                }
                let src = CommitSource {
                    repo: r,
                    commit: hb.commit,
                };
                let hex = hb.commit.to_hex().to_string();
                Ok(super::detect::check_blob(&blob, &src, opts)
                    .into_iter()
                    .map(|mut f| {
                        f.commit = Some(hex.clone());
                        f
                    })
                    .collect())
            },
        )
        .collect();
    let mut all: Vec<Finding> = results?.into_iter().flatten().collect();
    super::finish(&mut all);
    Ok((all, commits.len(), blobs.len()))
}
