//! The newcomer's map holds: every link and every file path a Markdown page names exists,
//! and nothing cites the contract outside the repository (its copy is `docs/DESIGN.md`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every Markdown file of the project (not build output, fetched fixtures or caches).
fn pages(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let skipped = name.starts_with('.')
                || ["target", "fixtures", "node_modules", "__pycache__", "venv"]
                    .contains(&name.as_str());
            if !skipped {
                pages(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Markdown link targets: the `x` of every `](x)`.
fn link_targets(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find(')')?;
            Some(rest[..end].trim().to_string())
        })
        .collect()
}

/// Code spans that look like a file of the repository (`src/peers.rs`, `docs/mqtt.md`).
fn named_files(text: &str) -> Vec<String> {
    const KINDS: [&str; 7] = [".rs", ".md", ".py", ".sh", ".toml", ".service", ".yml"];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            KINDS.iter().any(|k| s.ends_with(k))
                && !s.starts_with('/')
                && !s.starts_with("~")
                && !s.contains(['{', '}', '*', '<', '>', ' ', '$', '%'])
                && s.contains('/')
        })
        .map(str::to_string)
        .collect()
}

/// The folders a path in `page` may be relative to: the page's own, its crate's (the
/// nearest folder above with a Cargo.toml or pyproject.toml) and the repository's.
fn bases(page: &Path, root: &Path) -> Vec<PathBuf> {
    let mut out = vec![page.parent().unwrap().to_path_buf()];
    let mut dir = page.parent();
    while let Some(d) = dir {
        if d.join("Cargo.toml").exists() || d.join("pyproject.toml").exists() {
            out.push(d.to_path_buf());
            break;
        }
        if d == root {
            break;
        }
        dir = d.parent();
    }
    out.push(root.to_path_buf());
    out
}

#[test]
fn every_link_and_named_file_in_the_docs_exists() {
    let root = repo();
    let mut all = Vec::new();
    pages(&root, &mut all);
    assert!(all.len() > 10, "found only {} pages", all.len());
    let mut dead = Vec::new();
    for page in &all {
        let text = std::fs::read_to_string(page).unwrap();
        let links = link_targets(&text).into_iter().filter(|t| {
            !t.is_empty() && !t.starts_with('#') && !t.contains("://") && !t.starts_with("mailto:")
        });
        for target in links.chain(named_files(&text)) {
            let file = target.split('#').next().unwrap_or("");
            let found = file.is_empty()
                || bases(page, &root)
                    .iter()
                    .any(|b| b.join(file.trim_start_matches("./")).exists());
            if !found {
                dead.push(format!(
                    "{}: {target}",
                    page.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn the_contract_is_cited_inside_the_repository() {
    let root = repo();
    let mut all = Vec::new();
    pages(&root, &mut all);
    let outside: Vec<_> = all
        .iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("../shared/"))
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "pages citing ../shared/ (use docs/DESIGN.md): {outside:?}"
    );
    assert!(root.join("docs/DESIGN.md").exists());
}
