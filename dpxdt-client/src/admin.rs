//! Administration endpoints: `create_build` and `create_api_key` for
//! superuser keys, `revoke_api_key` also for a key of the same build (all
//! new in this version; used by set-up scripts, automation and tests).

use dpxdt_core::BuildId;
use dpxdt_core::api::{
    CreateApiKeyRequest, CreateApiKeyResponse, CreateBuildRequest, CreateBuildResponse,
    RevokeApiKeyRequest, RevokeApiKeyResponse,
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

    /// Revokes the API key `api_key` of `build_id`: allowed to a superuser
    /// key and to any key of that build (a key may revoke itself). From the
    /// next request on, the revoked key is refused with 401 everywhere. A
    /// key of another build gets 403; an unknown, already revoked or
    /// superuser key id is a 404.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dpxdt_client::ClientError> {
    /// use dpxdt_client::Client;
    /// use dpxdt_core::BuildId;
    ///
    /// // Rotate a CI key: make the new one (superuser), then drop the old one.
    /// let admin = Client::builder("http://127.0.0.1:5000")
    ///     .api_key("admin-id", "admin-secret")
    ///     .build()?;
    /// let fresh = admin.create_api_key(BuildId(1), Some("ci 2027")).await?;
    /// let ci = Client::builder("http://127.0.0.1:5000")
    ///     .api_key(&fresh.api_key, &fresh.api_secret)
    ///     .build()?;
    /// ci.revoke_api_key(BuildId(1), "old-key-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_api_key(
        &self,
        build_id: BuildId,
        api_key: &str,
    ) -> Result<RevokeApiKeyResponse, ClientError> {
        let request = RevokeApiKeyRequest {
            build_id,
            api_key: api_key.to_string(),
        };
        self.post_form("revoke_api_key", &request).await
    }
}
