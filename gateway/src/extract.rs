//! Extractors whose rejections are problem+json (axum's defaults are plain
//! text): JSON bodies, query strings and path parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{StatusCode, header, request::Parts};
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ErrorCode};
use crate::server::AppState;

/// A JSON request body. Requires a JSON `Content-Type`, honours the body
/// limit and the body read timeout, and maps every serde failure to a code.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// An optional JSON request body: an empty body is `None` (no
/// `Content-Type` needed then); anything else must be valid JSON.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

/// Query string parameters (`deny_unknown_fields` on the target type makes
/// unknown parameters an error).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

fn is_json_content_type(req: &Request) -> bool {
    has_json_content_type(req.headers())
}

/// Whether `Content-Type` is `application/json` or another `application/*+json`.
pub fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config().max_body_bytes;
    let timeout = state.config().body_read_timeout;
    match tokio::time::timeout(timeout, Bytes::from_request(req, state)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the request body was not received within {} ms", timeout.as_millis()),
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(rej)) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )),
        Ok(Err(rej)) => Err(ApiError::bad_request(ErrorCode::InvalidBody, rej.body_text())),
    }
}

/// Parses a JSON body into `T`, mapping serde errors to stable codes.
///
/// Every request body is a JSON object: another top-level value is
/// `422 invalid_type` (see [`Obj`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<Obj<T>>(bytes).map(|o| o.0).map_err(json_error)
}

/// Deserializes `T` from a JSON object only. serde's derived struct
/// deserializers also accept a JSON array (fields by position); request
/// bodies and their nested items go through this wrapper so that
/// `["alice","USD",false,null]` is rejected instead of silently accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

fn json_error(e: serde_json::Error) -> ApiError {
    {
        use serde_json::error::Category;
        let msg = e.to_string();
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(ErrorCode::MalformedJson, format!("malformed JSON: {msg}"))
            }
            Category::Data => {
                let code = if msg.starts_with("unknown field") {
                    ErrorCode::UnknownField
                } else if msg.starts_with("missing field") {
                    ErrorCode::MissingField
                } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
                    ErrorCode::InvalidType
                } else {
                    ErrorCode::InvalidBody
                };
                ApiError::unprocessable(code, msg)
            }
        }
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "the body must be JSON, sent with `Content-Type: application/json`",
    )
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(&req) {
            return Err(unsupported_media_type());
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = is_json_content_type(&req);
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(ApiError::bad_request(ErrorCode::InvalidQuery, rej.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(ApiError::bad_request(ErrorCode::InvalidPath, rej.body_text())),
        }
    }
}
