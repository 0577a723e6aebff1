//! The memory gate on a real room: the stand-ins (the detector's spare worker, the standby
//! detector) are shed when the box is short of memory and come back when it is not. The
//! shortage is simulated: oriond reads MemAvailable from a file the test writes
//! (`ORION_TEST_MEMINFO`); everything else is real (processes, workers, models).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::Value;

fn set_available(file: &Path, mb: u64) {
    let tmp = file.with_extension("tmp");
    let text = format!(
        "MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:   {} kB\n",
        mb * 1024
    );
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn alive(pid: &Value) -> bool {
    let pid = pid.as_u64().unwrap();
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn stand_ins_are_shed_when_memory_is_short_and_come_back_after() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let meminfo = dir.join("meminfo");
    set_available(&meminfo, 8000);
    // Only MemAvailable decides here: a busy test box's own memory pressure must not.
    let text = Oriond::config_text(
        &instance,
        &dir,
        None,
        "[memory]\nstand_ins_min_available_mb = 400\nstand_ins_max_pressure_pct = 100\nstand_ins_return_after_s = 2\n",
    )
    .unwrap();
    let env = vec![(
        "ORION_TEST_MEMINFO".to_string(),
        meminfo.display().to_string(),
    )];
    let o = Oriond::start_with_env(instance, dir, &text, env).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    o.wait_spare_ready(Duration::from_secs(60)).unwrap();
    let before = o.wait_standby_ready(Duration::from_secs(60)).unwrap();
    let spare = before["detector"]["spare_worker_pid"].clone();
    let standby = before["detector_standby"]["current"]["pid"].clone();
    assert!(alive(&spare) && alive(&standby), "{before}");
    assert_eq!(before["stand_ins"]["shed"], Value::Null, "{before}");
    assert_eq!(before["stand_ins"]["available_mb"], 8000, "{before}");

    // Short of memory: both stand-ins go, the room keeps working.
    set_available(&meminfo, 300);
    let shed = o
        .wait_for("the stand-ins shed", Duration::from_secs(20), |s| {
            s["stand_ins"]["shed"] == "memory"
                && s["detector"]["spare_shed"] == true
                && s["detector"]["spare_worker_pid"].is_null()
                && s["detector_standby"]["current"].is_null()
        })
        .unwrap();
    assert_eq!(shed["detector_standby"]["last_dropped"], "shed: memory");
    assert_eq!(shed["stand_ins"]["sheds"], 1);
    let gone = std::time::Instant::now();
    while (alive(&spare) || alive(&standby)) && gone.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&spare) && !alive(&standby), "their memory is back");
    let (_, out, _) = o.ctl(&["status", "detector"]).unwrap();
    assert!(
        out.contains("spare: shed, memory; standby: shed, memory"),
        "{out}"
    );
    // Still shed a while later (it stays short), and the detector still serves.
    let results = shed["detector"]["results"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let later = o.status().unwrap();
    assert_eq!(later["stand_ins"]["shed"], "memory", "{later}");
    assert!(later["detector"]["spare_worker_pid"].is_null(), "{later}");
    assert!(later["detector_standby"]["current"].is_null(), "{later}");
    assert!(
        later["detector"]["results"].as_u64().unwrap() > results,
        "the room keeps detecting: {later}"
    );
    for p in later["processes"].as_array().unwrap() {
        assert_eq!(p["restarts"], 0, "nothing restarted: {later}");
    }

    // Plenty again: after return_after_s both come back, new processes.
    set_available(&meminfo, 8000);
    let back = o
        .wait_for("the stand-ins back", Duration::from_secs(60), |s| {
            s["stand_ins"]["shed"].is_null()
                && s["detector"]["spare_shed"] == false
                && s["detector"]["spare_worker_ready"] == true
                && s["detector_standby"]["current"]["ready"] == true
        })
        .unwrap();
    assert_ne!(back["detector"]["spare_worker_pid"], spare, "{back}");
    assert_ne!(
        back["detector_standby"]["current"]["pid"], standby,
        "{back}"
    );
    assert_eq!(back["stand_ins"]["sheds"], 1);
}
