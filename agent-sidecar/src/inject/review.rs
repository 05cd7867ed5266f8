//! One `AdmissionReview` v1 in, one out.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use super::patch::{InjectConfig, patch};
use super::select::{Decision, decide};

/// Where the webhook is and which pods reach it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// What to inject.
    pub inject: InjectConfig,
    /// The webhook's own namespace, never injected.
    pub namespace: String,
}

/// Default [`Webhook::namespace`].
pub const DEFAULT_NAMESPACE: &str = "agent-sidecar-system";

impl Webhook {
    /// The webhook `inject-webhook` runs when no flag changes it, with the
    /// sidecar `image`.
    pub fn defaults(image: &str) -> Self {
        Webhook {
            inject: InjectConfig::defaults(image),
            namespace: DEFAULT_NAMESPACE.to_string(),
        }
    }
}

/// Errors reading an `AdmissionReview`.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not an `AdmissionReview` v1 of a pod.
    #[error(
        "admission review: the body is not an AdmissionReview (admission.k8s.io/v1) of a Pod: \
         {0}; check the MutatingWebhookConfiguration's rules (resources: pods, apiVersions: v1)"
    )]
    Parse(String),
}

impl Webhook {
    /// Answers one review body. `namespace_selected` is true on the path
    /// the namespace-selector webhook posts to. A body that cannot be read
    /// is answered with a denial (fail closed), never an error page.
    pub fn review(&self, body: &[u8], namespace_selected: bool) -> AdmissionReview<DynamicObject> {
        let request = match parse(body) {
            Ok(request) => request,
            Err(e) => return AdmissionResponse::invalid(e).into_review(),
        };
        self.respond(&request, namespace_selected).into_review()
    }

    /// [`Webhook::review`] as the JSON the API server reads: the patch as
    /// base64 text (the form of Go's `[]byte`), not an array of numbers.
    pub fn review_json(
        &self,
        body: &[u8],
        namespace_selected: bool,
    ) -> Result<Value, serde_json::Error> {
        let mut out = serde_json::to_value(self.review(body, namespace_selected))?;
        if let Some(patch) = out.pointer_mut("/response/patch") {
            let bytes: Vec<u8> = serde_json::from_value(patch.take())?;
            *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        Ok(out)
    }

    /// Answers one parsed request.
    pub fn respond(
        &self,
        request: &AdmissionRequest<Pod>,
        namespace_selected: bool,
    ) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        if request.operation != Operation::Create {
            return response;
        }
        let Some(pod) = request.object.as_ref() else {
            return response.deny("agent-sidecar: CREATE review without a pod object");
        };
        let namespace = request
            .namespace
            .as_deref()
            .or(pod.metadata.namespace.as_deref())
            .unwrap_or("default");
        match decide(
            pod,
            namespace,
            namespace_selected,
            &self.namespace,
            &self.inject.image,
        ) {
            Decision::Skip(reason) => {
                let mut response = response;
                response.warnings = Some(vec![reason]);
                response
            }
            Decision::Refuse(message) => response.deny(message),
            Decision::Inject => match patch(pod, &self.inject) {
                Ok(p) => match response.clone().with_patch(p) {
                    Ok(patched) => patched,
                    Err(e) => response.deny(format!("agent-sidecar: cannot encode the patch: {e}")),
                },
                Err(e) => response.deny(format!("agent-sidecar: cannot build the patch: {e}")),
            },
        }
    }
}

/// Reads a review body into the pod request.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<Pod>, ReviewError> {
    let review: AdmissionReview<Pod> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Parse(e.to_string()))?;
    review
        .try_into()
        .map_err(|e: kube_core::admission::ConvertAdmissionReviewError| {
            ReviewError::Parse(e.to_string())
        })
}
