//! Artifact endpoints: `upload` (from memory or streamed from a file) and
//! `download`. Both check the SHA-1 content address, so a damaged transfer is
//! an error, never a silently wrong artifact.

use std::path::Path;

use dpxdt_core::api::{DownloadRequest, UploadResponse};
use dpxdt_core::{ArtifactId, BuildId};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use sha1::{Digest, Sha1};
use tokio::io::AsyncReadExt;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Uploads bytes as an artifact of the build (`POST upload`, multipart).
    /// `file_name` lets the server infer the content type (`shot.png`).
    ///
    /// Uploading the same bytes again is harmless: artifacts are addressed
    /// by content.
    pub async fn upload_bytes(
        &self,
        build_id: BuildId,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<UploadResponse, ClientError> {
        let expected = ArtifactId::of_bytes(&bytes);
        let url = self.endpoint_url(&["upload"]);
        let response: UploadResponse = self
            .call_json("upload", &url, || {
                let part = Part::bytes(bytes.clone()).file_name(file_name.to_string());
                let form = Form::new()
                    .text("build_id", build_id.to_string())
                    .part("file", part);
                let builder = self.request(Method::POST, url.clone()).multipart(form);
                async move { Ok(builder) }
            })
            .await?;
        check_sha1("upload", &expected, &response.sha1sum)?;
        Ok(response)
    }

    /// Uploads a file as an artifact of the build, streaming it from disk
    /// (`POST upload`, multipart). The file is hashed first and the server's
    /// answer is checked against that hash.
    ///
    /// ```no_run
    /// # async fn demo(client: dpxdt_client::Client) -> Result<(), dpxdt_client::ClientError> {
    /// use dpxdt_core::BuildId;
    /// let uploaded = client.upload_file(BuildId(1), "shots/home.png".as_ref()).await?;
    /// println!("stored as {}", uploaded.sha1sum);
    /// # Ok(()) }
    /// ```
    pub async fn upload_file(
        &self,
        build_id: BuildId,
        path: &Path,
    ) -> Result<UploadResponse, ClientError> {
        let file_error = |source| ClientError::File {
            path: path.to_path_buf(),
            source,
        };
        let expected = sha1_of_file(path).await.map_err(file_error)?;
        let url = self.endpoint_url(&["upload"]);
        let response: UploadResponse = self
            .call_json("upload", &url, || async {
                // The file is opened again for every attempt: a stream cannot be rewound.
                let part = Part::file(path).await.map_err(file_error)?;
                let form = Form::new()
                    .text("build_id", build_id.to_string())
                    .part("file", part);
                Ok(self.request(Method::POST, url.clone()).multipart(form))
            })
            .await?;
        check_sha1("upload", &expected, &response.sha1sum)?;
        Ok(response)
    }

    /// Downloads an artifact of the build (`GET download`); the bytes are
    /// checked against their SHA-1 address.
    pub async fn download(
        &self,
        build_id: BuildId,
        sha1sum: &ArtifactId,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.endpoint_url(&["download"]);
        let query = DownloadRequest {
            sha1sum: sha1sum.as_str().to_owned(),
            build_id,
        };
        let (_, body) = self
            .call_raw("download", &url, || {
                let builder = self.request(Method::GET, url.clone()).query(&query);
                async move { Ok(builder) }
            })
            .await?;
        check_sha1("download", sha1sum, &ArtifactId::of_bytes(&body))?;
        Ok(body)
    }
}

fn check_sha1(endpoint: &str, expected: &ArtifactId, got: &ArtifactId) -> Result<(), ClientError> {
    if expected == got {
        Ok(())
    } else {
        Err(ClientError::InvalidResponse {
            endpoint: endpoint.to_string(),
            reason: format!("content has SHA-1 {got} but {expected} was expected"),
        })
    }
}

async fn sha1_of_file(path: &Path) -> std::io::Result<ArtifactId> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hex = hex::encode(hasher.finalize());
    Ok(ArtifactId::parse(&hex).expect("a SHA-1 digest is 40 hex digits"))
}
