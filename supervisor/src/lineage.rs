//! Who descends from whom, read from /proc: oriond's orphans (`crate::orphans`) and
//! whether a socket peer is a process oriond started (`crate::authority`).

/// The pids whose parent is `parent` (from /proc/PID/stat: no kernel option needed,
/// unlike /proc/PID/task/TID/children).
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// `pid`'s parent, if `pid` exists.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parent_in_stat(&stat)
}

/// Whether `pid` is `ancestor` or descends from it (a gone pid does not).
pub fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut at = pid;
    // Bounded: pid namespaces nest at most 32 deep, process trees rarely more than a few.
    for _ in 0..64 {
        if at == ancestor {
            return true;
        }
        match parent_of(at) {
            Some(parent) if parent > 0 && parent != at => at = parent,
            _ => return false,
        }
    }
    false
}

/// The parent pid in a /proc/PID/stat line: the second field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn parent_in_stat(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_after_the_command_name_whatever_it_holds() {
        assert_eq!(parent_in_stat("42 (python3) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b (c) Z 9 1 1"), Some(9));
        assert_eq!(parent_in_stat("42 (python3"), None);
    }

    #[test]
    fn a_child_and_its_child_descend_from_us_and_we_do_not_descend_from_them() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("the grandchild's pid");
        let grandchild: i32 = line.trim().parse().expect("a pid");
        assert!(descends_from(grandchild, me));
        assert!(descends_from(child.id() as i32, me));
        assert!(!descends_from(me, child.id() as i32));
        assert!(children_of(me).contains(&(child.id() as i32)));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }
}
