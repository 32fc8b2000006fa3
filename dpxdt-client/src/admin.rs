//! Administration endpoints for superuser keys: `create_build` and
//! `create_api_key` (new in this version; used by set-up scripts and tests).

use dpxdt_core::BuildId;
use dpxdt_core::api::{
    CreateApiKeyRequest, CreateApiKeyResponse, CreateBuildRequest, CreateBuildResponse,
};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Creates a build (superuser key only).
    pub async fn create_build(&self, name: &str) -> Result<CreateBuildResponse, ClientError> {
        let request = CreateBuildRequest {
            name: name.to_string(),
        };
        self.post_form("create_build", &request).await
    }

    /// Creates an API key scoped to one build (superuser key only). The
    /// secret in the answer is not shown again.
    pub async fn create_api_key(
        &self,
        build_id: BuildId,
        purpose: Option<&str>,
    ) -> Result<CreateApiKeyResponse, ClientError> {
        let request = CreateApiKeyRequest {
            build_id,
            purpose: purpose.map(str::to_string),
        };
        self.post_form("create_api_key", &request).await
    }
}
