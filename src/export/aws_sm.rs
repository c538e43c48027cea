//! AWS Secrets Manager: one secret per Secret, `SecretString` = the entry's
//! JSON object (what ESO's `property` selects from). Credentials, region,
//! `AWS_ENDPOINT_URL` and role assumption are the KMS backend's
//! ([`crate::keys::aws_kms::sdk_config`]): env, profiles, SSO, IRSA web
//! identity, ECS/EC2 metadata.
//!
//! Ownership is the `managed-by=ksec` tag. Unchanged values are detected by
//! reading first, so a re-run calls no `PutSecretValue`.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;

use super::{
    Backend, BackendError, ErrorClass, Item, MARKER_KEY, MARKER_VALUE, Remote, SOURCE_KEY,
};
use crate::keys::aws_kms::AwsKmsOptions;

pub struct AwsSmStore {
    client: Client,
    region: String,
}

impl AwsSmStore {
    /// `role` (optional) is assumed on top of the chain, as for KMS recipients.
    pub async fn connect(
        opts: &AwsKmsOptions,
        region: &str,
        profile: &str,
        role: &str,
    ) -> AwsSmStore {
        let conf = crate::keys::aws_kms::sdk_config(opts, region, profile, role).await;
        AwsSmStore {
            client: Client::new(&conf),
            region: region.to_string(),
        }
    }
}

fn classify<E>(what: &str, id: &str, e: SdkError<E>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or("").to_string();
    // A connection lost mid-request is a network failure, whatever hyper calls it.
    let transport = matches!(
        e,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
    );
    let mut b: BackendError = crate::keys::aws_kms::classify(id, e).into();
    b.class = match code.as_str() {
        "ResourceNotFoundException" => ErrorClass::NotFound,
        "InvalidRequestException" | "InvalidParameterException" => ErrorClass::Invalid,
        "ResourceExistsException" => ErrorClass::Conflict,
        _ if transport => ErrorClass::Network,
        _ => b.class,
    };
    b.detail = format!("{what}: {}", b.detail);
    b
}

fn tags(item: &Item) -> Vec<Tag> {
    vec![
        Tag::builder().key(MARKER_KEY).value(MARKER_VALUE).build(),
        Tag::builder().key(SOURCE_KEY).value(item.secret()).build(),
    ]
}

impl Backend for AwsSmStore {
    fn location(&self, id: &str) -> String {
        format!("aws-sm {}:{id}", self.region)
    }

    async fn read(&self, id: &str) -> Result<Option<Remote>, BackendError> {
        let d = match self.client.describe_secret().secret_id(id).send().await {
            Ok(d) => d,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify("DescribeSecret", id, e)),
        };
        if d.deleted_date().is_some() {
            return Err(BackendError::new(
                ErrorClass::Conflict,
                format!(
                    "{id} is scheduled for deletion; restore it (RestoreSecret) or wait until it is gone"
                ),
            ));
        }
        let owned = d
            .tags()
            .iter()
            .any(|t| t.key() == Some(MARKER_KEY) && t.value() == Some(MARKER_VALUE));
        let values = match self.client.get_secret_value().secret_id(id).send().await {
            Ok(v) => v.secret_string().and_then(super::Entry::parse_values),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => return Err(classify("GetSecretValue", id, e)),
        };
        Ok(Some(Remote {
            owned,
            values,
            version: None,
        }))
    }

    async fn write(&self, item: &Item, prev: Option<&Remote>) -> Result<(), BackendError> {
        let id = &item.id;
        let body = item.entry.to_json();
        match prev {
            None => {
                self.client
                    .create_secret()
                    .name(id)
                    .description("Exported by ksec from an encrypted Kubernetes Secret")
                    .secret_string(body.as_str())
                    .set_tags(Some(tags(item)))
                    .send()
                    .await
                    .map_err(|e| classify("CreateSecret", id, e))?;
            }
            Some(r) => {
                if !r.owned {
                    self.client
                        .tag_resource()
                        .secret_id(id)
                        .set_tags(Some(tags(item)))
                        .send()
                        .await
                        .map_err(|e| classify("TagResource", id, e))?;
                }
                self.client
                    .put_secret_value()
                    .secret_id(id)
                    .secret_string(body.as_str())
                    .send()
                    .await
                    .map_err(|e| classify("PutSecretValue", id, e))?;
            }
        }
        Ok(())
    }
}
