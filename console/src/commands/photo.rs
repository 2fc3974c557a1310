//! `photo get REF -o FILE`: a photo people sent with a completion or a
//! field report (dispatcher and above), written to a file. The references
//! are listed by `incident show` (the report's photos and each
//! completion's) and in the event feed.

use std::io::Write;
use std::path::Path;

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::output;

/// Reads `photo_ref` (GetPhoto) and writes its bytes to `path`, never over
/// an existing file; `-` writes them to stdout (for a pipe).
pub async fn get(client: &mut Client, photo_ref: &str, path: &Path, as_json: bool) -> Result<(), ConsoleError> {
    let photo = client.get_photo(pb::GetPhotoRequest { photo_ref: photo_ref.trim().to_string() }).await?.into_inner();
    if path == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        return stdout.write_all(&photo.data).and_then(|()| stdout.flush()).map_err(ConsoleError::Output);
    }
    write_new(path, &photo.data)?;
    if as_json {
        return output::json_document(&json!({
            "photo_ref": photo.photo_ref,
            "content_type": photo.content_type,
            "bytes": photo.data.len(),
            "file": path.display().to_string(),
        }));
    }
    output::line(&saved_text(&photo, path))
}

pub fn saved_text(photo: &pb::Photo, path: &Path) -> String {
    format!("saved {} ({}, {} bytes) to {}", photo.photo_ref, photo.content_type, photo.data.len(), path.display())
}

/// Writes a new file: a photo is never written over one the user has.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ConsoleError> {
    let written = std::fs::OpenOptions::new().write(true).create_new(true).open(path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|error| {
        let message = if error.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists, and a photo is never written over a file; name a new file".to_string()
        } else {
            format!("cannot write the photo there: {error}")
        };
        ConsoleError::InFile { path: path.to_path_buf(), message }
    })
}

/// The photos of an incident as `incident show` lists them: the field
/// report's, then each completion's with the person who sent it.
pub fn incident_photos(incident: &pb::Incident) -> Vec<(String, String)> {
    let mut listed: Vec<(String, String)> = Vec::new();
    let report = std::iter::once(&incident.photo_ref).chain(&incident.photo_refs).filter(|photo_ref| !photo_ref.is_empty());
    for photo_ref in report {
        if !listed.iter().any(|(_, known)| known == photo_ref) {
            listed.push(("report".to_string(), photo_ref.clone()));
        }
    }
    for assignment in &incident.assignments {
        for photo_ref in &assignment.photo_refs {
            listed.push((format!("completion by {}", assignment.agent_id), photo_ref.clone()));
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incidents_photos_are_the_reports_then_each_completions() {
        let incident = pb::Incident {
            photo_ref: "sha256:aa".into(),
            photo_refs: vec!["sha256:aa".into(), "sha256:bb".into()],
            assignments: vec![pb::Assignment {
                agent_id: "p0002".into(),
                photo_refs: vec!["sha256:cc".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            incident_photos(&incident),
            [
                ("report".to_string(), "sha256:aa".to_string()),
                ("report".to_string(), "sha256:bb".to_string()),
                ("completion by p0002".to_string(), "sha256:cc".to_string()),
            ]
        );
    }

    #[test]
    fn a_photo_is_never_written_over_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("photo.jpg");
        write_new(&path, b"one").expect("written");
        let refused = write_new(&path, b"two").expect_err("exists");
        assert!(refused.to_string().contains("already exists"), "{refused}");
        assert_eq!(std::fs::read(&path).expect("read"), b"one");
    }
}
