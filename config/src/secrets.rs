//! Files that hold secrets (the MQTT password, the camera's user and password): read with
//! their permissions checked, and never echoed into an error message.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::ConfigError;

/// Largest secret file read.
const MAX_SECRET: u64 = 4096;
/// Longest private key file accepted.
const MAX_KEY: u64 = 64 * 1024;

fn bad(key: &str, message: String) -> ConfigError {
    ConfigError::Key {
        path: key.into(),
        message,
    }
}

/// Reads the secret file of `key`: a regular file of at most 4 KiB that other users can
/// neither read nor write (owner and group only, e.g. root:orion 0640).
pub(crate) fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    read_at_most(key, path, MAX_SECRET)
}

/// A private key (PEM): as [`read`], up to [`MAX_KEY`] (an RSA-8192 key is about 6.5 KiB).
pub(crate) fn read_key(key: &str, path: &Path) -> Result<String, ConfigError> {
    read_at_most(key, path, MAX_KEY)
}

fn read_at_most(key: &str, path: &Path, max: u64) -> Result<String, ConfigError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| bad(key, format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(bad(key, format!("{shown} is not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(bad(
            key,
            format!(
                "{shown} is open to every user (mode {mode:04o}, owner uid {}); chmod o-rwx {shown}",
                meta.uid()
            ),
        ));
    }
    if meta.len() > max {
        return Err(bad(key, format!("{shown} is larger than {max} bytes")));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(key, format!("cannot read {shown}: {e}")))?;
    Ok(text)
}

/// True if an `rtsp://` URI carries a password in its authority (`user:pass@host`).
pub(crate) fn has_password(uri: &str) -> bool {
    let Some((_, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// `uri` with `user` and `password` as its (percent-encoded) userinfo.
pub(crate) fn with_credentials(
    uri: &str,
    user: &str,
    password: &str,
) -> Result<String, ConfigError> {
    let key = "camera.credentials_file";
    let mut url = url::Url::parse(uri).map_err(|e| bad("camera.source", e.to_string()))?;
    if user.is_empty() {
        return Err(bad(key, "the user name is empty".into()));
    }
    url.set_username(user)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| bad(key, "cannot put credentials into camera.source".into()))?;
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_in_uris_are_found() {
        assert!(has_password("rtsp://admin:pw@cam/x"));
        assert!(has_password("rtsps://a:b@cam:322"));
        assert!(!has_password("rtsp://admin@cam/x"));
        assert!(!has_password("rtsp://cam/x?user=a:b@c"));
        assert!(!has_password("rtsp://cam:554/x"));
    }

    #[test]
    fn credentials_are_percent_encoded_into_the_uri() {
        let uri = with_credentials("rtsp://cam:8554/s?x=1", "ad min", "p@ss:w/rd").unwrap();
        assert_eq!(uri, "rtsp://ad%20min:p%40ss%3Aw%2Frd@cam:8554/s?x=1");
    }

    #[test]
    fn secret_files_must_be_private() {
        let dir = std::env::temp_dir().join(format!("orion-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read("mqtt.password_file", &f).unwrap_err().to_string();
        assert!(
            err.contains("mqtt.password_file") && err.contains("0644"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "the secret leaked: {err}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(read("mqtt.password_file", &f).unwrap(), "hunter2\n");
        std::fs::write(&f, vec![b'x'; 5000]).unwrap();
        assert!(
            read("k", &f)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
        assert!(
            read("k", &dir)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
