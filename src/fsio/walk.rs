//! The one directory walker. Two policies, because two questions are asked
//! of a tree:
//! - [`Policy::Manifests`] (encrypt, updatekeys, apply, diff, export,
//!   doctor): YAML and JSON files to act on. Hidden entries and symlinks
//!   are not entered but *reported*, so a manifest in `.secrets/` is named
//!   instead of silently left plaintext; `.git`, `target` and
//!   `node_modules` are never places for manifests.
//! - [`Policy::Everything`] (the guard's `check DIR`): every file, hidden
//!   ones included (a `.env` is exactly what it must judge), honouring
//!   `.gitignore` unless told not to, never following symlinks.
//!
//! Files given by name are always taken, whatever their name.

use std::path::{Path, PathBuf};

use crate::sops::Format;

/// What a walk takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Manifests,
    Everything { gitignore: bool },
}

/// Why a walk passed over an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    HiddenFolder,
    HiddenFile,
    Symlink,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::HiddenFolder => "hidden folder, not walked: pass it explicitly",
            SkipReason::HiddenFile => "hidden file, not walked: pass it explicitly",
            SkipReason::Symlink => "symlink, not followed: pass its target itself",
        }
    }
}

/// One file a walk takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// Found inside a directory (not named by the caller).
    pub walked: bool,
}

/// What a walk found, in path order per argument, and what it passed over.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<Found>,
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

#[derive(Debug, thiserror::Error)]
#[error("walking {}: {source}", path.display())]
pub struct WalkError {
    path: PathBuf,
    #[source]
    source: ignore::Error,
}

/// Folders no manifest lives in (build output, dependencies, Git's own).
const NEVER: [&str; 3] = [".git", "target", "node_modules"];

pub fn walk(paths: &[PathBuf], policy: Policy) -> Result<Walk, WalkError> {
    let mut out = Walk::default();
    for p in paths {
        if p.is_dir() {
            walk_dir(p, policy, &mut out)?;
        } else {
            out.files.push(Found {
                path: p.clone(),
                walked: false,
            });
        }
    }
    Ok(out)
}

fn walk_dir(root: &Path, policy: Policy, out: &mut Walk) -> Result<(), WalkError> {
    let gitignore = matches!(policy, Policy::Everything { gitignore: true });
    let hidden = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hidden.clone();
    let walker = ignore::WalkBuilder::new(root)
        .follow_links(false)
        .hidden(false)
        .parents(gitignore)
        .ignore(false)
        .git_global(gitignore)
        .git_ignore(gitignore)
        .git_exclude(gitignore)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| match enter(e, policy) {
            Enter::Yes => true,
            Enter::No => false,
            Enter::Report(why) => {
                let mut v = seen.lock().unwrap_or_else(|p| p.into_inner());
                v.push((e.path().to_path_buf(), why));
                false
            }
        })
        .build();
    let mut skipped = Vec::new();
    for e in walker {
        let e = e.map_err(|source| WalkError {
            path: root.to_path_buf(),
            source,
        })?;
        let ty = e.file_type();
        if e.depth() == 0 || ty.is_some_and(|t| t.is_dir()) {
            continue;
        }
        if ty.is_some_and(|t| t.is_symlink()) {
            if policy == Policy::Manifests {
                skipped.push((e.into_path(), SkipReason::Symlink));
            }
            continue;
        }
        let take = policy != Policy::Manifests || is_manifest(e.path());
        if take && ty.is_some_and(|t| t.is_file()) {
            out.files.push(Found {
                path: e.into_path(),
                walked: true,
            });
        }
    }
    skipped.extend(std::mem::take(
        &mut *hidden.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    skipped.sort();
    out.skipped.extend(skipped);
    Ok(())
}

enum Enter {
    Yes,
    No,
    /// Not entered, and named in [`Walk::skipped`].
    Report(SkipReason),
}

fn enter(e: &ignore::DirEntry, policy: Policy) -> Enter {
    if e.depth() == 0 {
        return Enter::Yes;
    }
    let name = e.file_name().to_string_lossy();
    if name == ".git" {
        return Enter::No;
    }
    if policy != Policy::Manifests {
        return Enter::Yes;
    }
    let is_dir = e.file_type().is_some_and(|t| t.is_dir());
    if NEVER.contains(&name.as_ref()) {
        return Enter::No;
    }
    if is_hidden(e.file_name()) {
        return match (is_dir, is_manifest(e.path())) {
            (true, _) => Enter::Report(SkipReason::HiddenFolder),
            (false, true) => Enter::Report(SkipReason::HiddenFile),
            (false, false) => Enter::No,
        };
    }
    Enter::Yes
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// A YAML or JSON file that is not sops's own configuration.
fn is_manifest(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    n != ".sops.yaml"
        && n != ".sops.yml"
        && matches!(Format::from_path(p), Format::Yaml | Format::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_walked_and_what_is_passed_over_is_named() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, t).unwrap();
        };
        w("a.yaml", "a: 1");
        w("sub/b.json", "{}");
        w("sub/notes.txt", "x");
        w(".secrets/c.yaml", "c: 1");
        w(".env.yaml", "d: 1");
        w(".sops.yaml", "creation_rules: []");
        w("target/e.yaml", "e: 1");
        w(".git/f.yaml", "f: 1");
        std::os::unix::fs::symlink(d.path().join("a.yaml"), d.path().join("link.yaml")).unwrap();
        let got = walk(&[d.path().to_path_buf()], Policy::Manifests).unwrap();
        let rel = |p: &Path| {
            p.strip_prefix(d.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        let files: Vec<String> = got.files.iter().map(|f| rel(&f.path)).collect();
        assert_eq!(files, ["a.yaml", "sub/b.json"]);
        let skipped: Vec<(String, SkipReason)> =
            got.skipped.iter().map(|(p, r)| (rel(p), *r)).collect();
        assert_eq!(
            skipped,
            [
                (".env.yaml".into(), SkipReason::HiddenFile),
                (".secrets".into(), SkipReason::HiddenFolder),
                ("link.yaml".into(), SkipReason::Symlink),
            ]
        );
        let all = walk(
            &[d.path().to_path_buf()],
            Policy::Everything { gitignore: false },
        )
        .unwrap();
        let files: Vec<String> = all.files.iter().map(|f| rel(&f.path)).collect();
        assert!(files.contains(&".secrets/c.yaml".to_string()), "{files:?}");
        assert!(files.contains(&"sub/notes.txt".to_string()), "{files:?}");
        assert!(!files.iter().any(|f| f.starts_with(".git/")), "{files:?}");
        assert!(all.skipped.is_empty());
    }
}
