//! The project file: what opening a project in the designer stands for.
//!
//! `cloud place create` writes it once (mode 0600: it holds the Place's
//! key); `place activate`, `place open` (Browse Local) and
//! `remote-services enable` read it and present its key. It is a small
//! pretty-printed JSON object, `{"place": …, "project_key": …}`, so that an
//! operator can see which Place a file is for.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CloudError;
use super::model::{AccountId, PlaceId, ProjectKey, Timestamp};
use super::refusal::Refusal;
use super::rules::Command;
use super::store::{CloudStore, ProcessorRecord, fresh_secret};

/// What a project file holds.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProjectFile {
    pub place: PlaceId,
    pub project_key: ProjectKey,
}

impl ProjectFile {
    /// Reads the project file at `path`.
    ///
    /// # Errors
    /// [`CloudError::Io`] when it cannot be read,
    /// [`CloudError::NotAProjectFile`] when it is not one.
    pub fn read(path: &Path) -> Result<ProjectFile, CloudError> {
        let text = std::fs::read_to_string(path).map_err(CloudError::io(format!(
            "reading the project file {}",
            path.display()
        )))?;
        ProjectFile::from_json(&text, path)
    }

    /// Reads a project file's text; `path` only names it in the error.
    ///
    /// # Errors
    /// [`CloudError::NotAProjectFile`].
    pub fn from_json(text: &str, path: &Path) -> Result<ProjectFile, CloudError> {
        serde_json::from_str(text).map_err(|e| CloudError::NotAProjectFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The file's bytes: pretty JSON and a final newline.
    ///
    /// # Errors
    /// [`CloudError::Failed`] if it cannot be encoded.
    pub fn to_json(&self) -> Result<Vec<u8>, CloudError> {
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| CloudError::Failed(format!("cannot encode the project file: {e}")))?;
        text.push(b'\n');
        Ok(text)
    }

    /// Refuses a `path` that exists: a project file is written once, so an
    /// old Place's key is never overwritten.
    ///
    /// # Errors
    /// [`CloudError::ProjectFileExists`].
    pub fn ensure_absent(path: &Path) -> Result<(), CloudError> {
        if path.exists() {
            return Err(CloudError::ProjectFileExists {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    /// Writes the file at `path`, 0600, whole or not at all.
    ///
    /// # Errors
    /// [`CloudError::Failed`] for a path with no file name,
    /// [`CloudError::Identity`] when it cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), CloudError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CloudError::Failed(format!("{} is not a file path", path.display())))?;
        crate::identity::files::write_private(dir, name, &self.to_json()?)?;
        Ok(())
    }

    /// Starts a project in the cloud: creates `place` for `by` with a fresh
    /// key (and `processor` activated, if named), then writes its project
    /// file at `path`. Nothing is created when `path` exists.
    ///
    /// # Errors
    /// [`CloudError`] for the file, the store or the randomness; the inner
    /// [`Refusal`] when a rule refuses (no file is written then).
    pub fn create(
        store: &CloudStore,
        path: &Path,
        place: PlaceId,
        by: &AccountId,
        remote_services: bool,
        processor: Option<ProcessorRecord>,
        now: Timestamp,
    ) -> Result<Result<ProjectFile, Refusal>, CloudError> {
        ProjectFile::ensure_absent(path)?;
        let file = ProjectFile {
            place,
            project_key: ProjectKey(fresh_secret()?),
        };
        let cmd = Command::CreatePlace {
            place: file.place.clone(),
            by: by.clone(),
            key: file.project_key.clone(),
            remote_services,
        };
        if let Err(refusal) = store.create_place(&cmd, processor, now)? {
            return Ok(Err(refusal));
        }
        file.write(path)?;
        Ok(Ok(file))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file() -> ProjectFile {
        ProjectFile {
            place: PlaceId("lake-house".into()),
            project_key: ProjectKey("0123abcd".into()),
        }
    }

    #[test]
    fn the_project_file_is_pretty_json_naming_the_place_and_its_key() {
        let text = String::from_utf8(file().to_json().unwrap()).unwrap();
        assert_eq!(
            text,
            "{\n  \"place\": \"lake-house\",\n  \"project_key\": \"0123abcd\"\n}\n"
        );
        assert_eq!(
            ProjectFile::from_json(&text, Path::new("p.json")).unwrap(),
            file()
        );
    }

    #[test]
    fn what_is_not_a_project_file_says_which_file() {
        for bad in ["", "{}", "[]", "{\"place\": \"p\"}", "not json"] {
            let e = ProjectFile::from_json(bad, Path::new("dir/p.json")).expect_err(bad);
            assert!(
                matches!(e, CloudError::NotAProjectFile { .. }),
                "{bad}: {e:?}"
            );
            assert!(
                e.to_string()
                    .starts_with("dir/p.json is not a handoff project file: "),
                "{e}"
            );
        }
    }

    #[test]
    fn a_project_file_is_written_private_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.json");
        ProjectFile::ensure_absent(&path).unwrap();
        file().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ProjectFile::read(&path).unwrap(), file());
        let e = ProjectFile::ensure_absent(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} exists: a project file is written once (pick another path)",
                path.display()
            )
        );
        let missing = ProjectFile::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(matches!(missing, CloudError::Io { .. }), "{missing:?}");
    }

    #[test]
    fn creating_a_place_writes_its_project_file_and_never_over_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CloudStore::open(&dir.path().join("data")).unwrap();
        let (path, by, now) = (
            dir.path().join("p.json"),
            AccountId::new("o@example.com"),
            Timestamp(1_800_000_000),
        );
        let place = PlaceId("p".into());
        let made = ProjectFile::create(&store, &path, place.clone(), &by, true, None, now)
            .unwrap()
            .unwrap();
        assert_eq!(made.place, place);
        assert_eq!(ProjectFile::read(&path).unwrap(), made);
        assert_eq!(
            store.place(&place).unwrap().unwrap().project_key,
            made.project_key
        );

        let again = ProjectFile::create(&store, &path, PlaceId("q".into()), &by, true, None, now);
        assert!(matches!(again, Err(CloudError::ProjectFileExists { .. })));
        assert!(store.place(&PlaceId("q".into())).unwrap().is_none());

        // A refusal (the Place exists) writes no file.
        let other = dir.path().join("other.json");
        let refused = ProjectFile::create(&store, &other, place, &by, true, None, now).unwrap();
        assert!(refused.is_err() && !other.exists());
    }
}
