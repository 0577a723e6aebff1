//! Whether root may run an interpreter: `orion-setup` and `oriond --check-config` run the
//! worker's Python as root, and root must never execute code another user can write (the
//! service user `orion` above all: a compromised worker would become root the next time an
//! administrator checks the config). Everything root would run — the venv, every file
//! below it, the folders above it, and the interpreter the venv links to with the folders
//! above that — must be owned by root and writable by nobody else.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Why root may not run `python` (a path to a venv's interpreter); `Ok` when it may, or
/// when this process is not root, or `python` is a bare name looked up on PATH (root's
/// own PATH is root's business).
pub fn root_may_run(python: &Path) -> Result<(), String> {
    if !nix_is_root() || python.components().count() < 2 {
        return Ok(());
    }
    // The venv: `…/venv/bin/python3` → `…/venv`, every file below it.
    if let Some(venv) = python
        .parent()
        .filter(|b| b.ends_with("bin"))
        .and_then(Path::parent)
        && venv.join("pyvenv.cfg").exists()
    {
        walk(venv)?;
        above(venv)?;
    }
    // What the interpreter resolves to (a venv links to the system's), and its folders.
    let real = std::fs::canonicalize(python)
        .map_err(|e| format!("{}: cannot resolve it: {e}", python.display()))?;
    only_root_writes(&real)?;
    above(&real)
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `path` is owned by root and writable by no one else (a symlink itself is not checked:
/// its target is, where it is followed).
fn only_root_writes(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("{}: cannot inspect it: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    // Who else may change it: its owner, its group's members if the group may write, anyone
    // if others may. A sticky folder (/tmp) lets them add entries but not replace root's.
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    let group_writes = mode & 0o020 != 0 && meta.gid() != 0 && !sticky_dir;
    let others_write = mode & 0o002 != 0 && !sticky_dir;
    if meta.uid() != 0 || group_writes || others_write {
        return Err(format!(
            "{} is owned by uid {} with mode {:04o}: another user could change what root would \
             run; make it root's (chown -R root:root, chmod go-w) or recreate the venv with \
             orion-setup as root",
            path.display(),
            meta.uid(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Every file and folder below `dir` (symlinks not followed), and `dir` itself.
fn walk(dir: &Path) -> Result<(), String> {
    only_root_writes(dir)?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot list it: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            walk(&path)?;
        } else {
            only_root_writes(&path)?;
        }
    }
    Ok(())
}

/// The folders above `path`, up to /.
fn above(path: &Path) -> Result<(), String> {
    let mut at = path.parent();
    while let Some(dir) = at {
        if dir.as_os_str().is_empty() {
            break;
        }
        only_root_writes(dir)?;
        at = dir.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn root_refuses_a_venv_another_user_can_write_and_accepts_its_own() {
        if !nix_is_root() {
            // Only root runs this check; as another user there is nothing to test.
            return;
        }
        let base = std::env::temp_dir().join(format!("orion-trust-{}", std::process::id()));
        let root = Path::new("/var/tmp").join(base.file_name().unwrap());
        let venv = root.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let python = venv.join("bin/python3");
        let _ = std::fs::remove_file(&python);
        std::os::unix::fs::symlink("/usr/bin/python3", &python).unwrap();
        // Below a sticky, world-writable folder (/var/tmp) in a folder of root's: others
        // cannot replace root's entries there.
        assert_eq!(root_may_run(&python), Ok(()));
        // A folder of the venv others may write: refused, naming it.
        std::fs::set_permissions(&venv, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = root_may_run(&python).unwrap_err();
        assert!(e.contains("venv") && e.contains("0777"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();

        // Below a root-only folder: its own venv is fine, one file of another user is not.
        let root = Path::new("/var/lib").join(base.file_name().unwrap());
        let venv = root.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::create_dir_all(venv.join("lib/site-packages")).unwrap();
        for d in [&root, &venv] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let python = venv.join("bin/python3");
        std::os::unix::fs::symlink("/usr/bin/python3", &python).unwrap();
        assert_eq!(root_may_run(&python), Ok(()));
        let planted = venv.join("lib/site-packages/numpy.py");
        std::fs::write(&planted, "").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = root_may_run(&python).unwrap_err();
        assert!(e.contains("numpy.py") && e.contains("0666"), "{e}");
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
        nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = root_may_run(&python).unwrap_err();
        assert!(e.contains("uid 65534"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
