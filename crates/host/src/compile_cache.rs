//! Compiled components kept between processes, so a CLI call starts in milliseconds instead of
//! compiling the component with Cranelift every time.
//!
//! The artifact is named by the SHA-256 of the component's bytes and the engine's compatibility
//! hash, and loaded with `Component::deserialize_file`, which refuses an artifact from another
//! wasmtime version or engine configuration (then it is compiled again). Deserializing runs native
//! code, so the cache lives in a folder only its owner can write (0700), and an artifact that is
//! not the owner's or is writable by others is ignored, as wasmtime's own cache does.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The folder the CLI keeps compiled components in: `$XDG_CACHE_HOME/dynamics-connector`, or
/// `~/.cache/dynamics-connector`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("dynamics-connector"))
}

/// Where the artifact of `bytes` for `engine` lives in `dir`.
pub fn artifact_path(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::digest(bytes);
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}-{:016x}.cwasm", engine_hash.finish()))
}

/// The compiled component: loaded from `dir` when a usable artifact is there, else compiled and
/// stored for the next process. A cache that cannot be written only costs the next start.
pub fn load_or_compile(engine: &Engine, bytes: &[u8], dir: &Path) -> anyhow::Result<Component> {
    load_or_compile_from(engine, bytes, dir).map(|(component, _)| component)
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Compiled,
}

fn load_or_compile_from(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
) -> anyhow::Result<(Component, Source)> {
    let path = artifact_path(engine, bytes, dir);
    if let Some(artifact) = read_trusted(&path) {
        // SAFETY: these bytes were read through one open of a file that is not a symlink, owned
        // by this user and writable by nobody else, in a folder with the same properties (see
        // `read_trusted`): only this user's own `store` below wrote it, from this engine's
        // compilation of these bytes (the name carries their hash). wasmtime checks the engine's
        // version and settings itself and refuses a mismatch.
        if let Ok(component) = unsafe { Component::deserialize(engine, &artifact) } {
            return Ok((component, Source::Cache));
        }
    }
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the component")?;
    if let Ok(serialized) = component.serialize() {
        let _ = store(dir, &path, &serialized);
    }
    Ok((component, Source::Compiled))
}

fn store(dir: &Path, path: &Path, serialized: &[u8]) -> anyhow::Result<()> {
    crate::tokens::ensure_private_dir(dir, true)?;
    anyhow::ensure!(
        folder_is_private(dir),
        "the compile cache folder {} is not this user's alone",
        dir.display()
    );
    // Written beside the target and renamed over it: another process never reads half a file.
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let written = (|| -> anyhow::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        file.write_all(serialized)?;
        file.sync_all()?;
        fs::rename(&partial, path)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// The artifact's bytes, read through one open that follows no symlink, when the open file and
/// its folder are this user's and writable by nobody else; checking the open file (not the path
/// again) leaves no gap between the check and the read.
#[cfg(unix)]
fn read_trusted(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    if !folder_is_private(path.parent()?) {
        return None;
    }
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let metadata = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !metadata.is_file() || metadata.uid() != me || metadata.mode() & 0o022 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).ok()?);
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(not(unix))]
fn read_trusted(_path: &Path) -> Option<Vec<u8>> {
    None
}

/// A real folder (not a symlink) owned by this user that nobody else can write, under a parent
/// that others cannot write either unless it is sticky (like /tmp), so its name cannot be
/// swapped for another folder.
#[cfg(unix)]
fn folder_is_private(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let Ok(folder) = fs::symlink_metadata(dir) else {
        return false;
    };
    let parent_ok = match dir.parent().map(fs::symlink_metadata) {
        Some(Ok(parent)) => parent.mode() & 0o022 == 0 || parent.mode() & 0o1000 != 0,
        _ => true,
    };
    folder.is_dir() && folder.uid() == me && folder.mode() & 0o022 == 0 && parent_ok
}

#[cfg(not(unix))]
fn folder_is_private(_dir: &Path) -> bool {
    false
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_artifact_is_reused_only_while_it_is_the_owners_alone_and_whole() {
        let dir = std::env::temp_dir().join(format!("compile-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let engine = Engine::default();
        let bytes = crate::DYNAMICS_COMPONENT;
        let path = artifact_path(&engine, bytes, &dir);

        let (_, first) = load_or_compile_from(&engine, bytes, &dir).unwrap();
        assert_eq!(first, Source::Compiled);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        let (_, second) = load_or_compile_from(&engine, bytes, &dir).unwrap();
        assert_eq!(second, Source::Cache);

        // Writable by others: someone else could have put native code there.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let (_, tampered) = load_or_compile_from(&engine, bytes, &dir).unwrap();
        assert_eq!(tampered, Source::Compiled);
        assert_eq!(mode(&path), 0o600, "written again, owner-only");

        // A symlink in its place, even to a good artifact, is not followed.
        let copy = dir.join("elsewhere.cwasm");
        fs::copy(&path, &copy).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&copy, &path).unwrap();
        let (_, linked) = load_or_compile_from(&engine, bytes, &dir).unwrap();
        assert_eq!(linked, Source::Compiled);
        assert!(
            !fs::symlink_metadata(&path).unwrap().is_symlink(),
            "replaced by a real file"
        );

        // Cut short: refused by wasmtime, compiled again.
        let whole = fs::read(&path).unwrap();
        fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let (_, cut) = load_or_compile_from(&engine, bytes, &dir).unwrap();
        assert_eq!(cut, Source::Compiled);

        // Another engine configuration names another artifact.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        assert_ne!(artifact_path(&other, bytes, &dir), path);
        let _ = fs::remove_dir_all(&dir);
    }
}
