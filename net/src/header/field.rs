//! Conversion of one header field between its Rust type and its `ext_fields` string.

use super::HeaderFieldError;

/// A type a header field can have. `Option<T>` fields are optional, all others required.
pub trait FieldValue: Sized {
    /// Reads the field from its value in `ext_fields` (`None` when absent).
    fn read(field: &'static str, raw: Option<&str>) -> Result<Self, HeaderFieldError>;
    /// The value to store in `ext_fields`; `None` leaves the field out.
    fn write(&self) -> Option<String>;
    /// Like [`FieldValue::read`] from `ext[field]`, but a string value is moved out of `ext`
    /// instead of copied (the field is then absent from `ext`); other types leave `ext` unchanged.
    fn take(
        field: &'static str,
        ext: &mut crate::codec::ExtFields,
    ) -> Result<Self, HeaderFieldError> {
        Self::read(field, ext.get(field).map(String::as_str))
    }
}

fn required<'a>(field: &'static str, raw: Option<&'a str>) -> Result<&'a str, HeaderFieldError> {
    raw.ok_or(HeaderFieldError::Missing { field })
}

impl FieldValue for String {
    fn read(field: &'static str, raw: Option<&str>) -> Result<Self, HeaderFieldError> {
        required(field, raw).map(str::to_owned)
    }
    fn write(&self) -> Option<String> {
        Some(self.clone())
    }
    fn take(
        field: &'static str,
        ext: &mut crate::codec::ExtFields,
    ) -> Result<Self, HeaderFieldError> {
        ext.remove(field).ok_or(HeaderFieldError::Missing { field })
    }
}

impl FieldValue for bool {
    fn read(field: &'static str, raw: Option<&str>) -> Result<Self, HeaderFieldError> {
        required(field, raw).map(|v| v.trim().eq_ignore_ascii_case("true"))
    }
    fn write(&self) -> Option<String> {
        Some(self.to_string())
    }
}

macro_rules! numeric_field {
    ($($ty:ty => $expected:literal),*) => {$(
        impl FieldValue for $ty {
            fn read(field: &'static str, raw: Option<&str>) -> Result<Self, HeaderFieldError> {
                let v = required(field, raw)?;
                v.trim().parse().map_err(|_| HeaderFieldError::Invalid {
                    field,
                    value: v.to_owned(),
                    expected: $expected,
                })
            }
            fn write(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

numeric_field!(i32 => "an int", i64 => "a long");

impl<T: FieldValue> FieldValue for Option<T> {
    fn read(field: &'static str, raw: Option<&str>) -> Result<Self, HeaderFieldError> {
        raw.map(|v| T::read(field, Some(v))).transpose()
    }
    fn write(&self) -> Option<String> {
        self.as_ref().and_then(FieldValue::write)
    }
    fn take(
        field: &'static str,
        ext: &mut crate::codec::ExtFields,
    ) -> Result<Self, HeaderFieldError> {
        if ext.contains_key(field) {
            T::take(field, ext).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Declares a header struct whose fields map to `ext_fields` names, and its [`super::CommandHeader`]
/// implementation.
macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $wire:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $crate::header::CommandHeader for $name {
            #[allow(unused_variables)]
            fn from_ext_fields(
                ext: &$crate::codec::ExtFields,
            ) -> Result<Self, $crate::header::HeaderFieldError> {
                Ok($name {
                    $(
                        $field: $crate::header::field::FieldValue::read(
                            $wire,
                            ext.get($wire).map(String::as_str),
                        )?,
                    )*
                })
            }

            #[allow(unused_variables)]
            fn take_from_ext_fields(
                ext: &mut $crate::codec::ExtFields,
            ) -> Result<Self, $crate::header::HeaderFieldError> {
                Ok($name {
                    $(
                        $field: $crate::header::field::FieldValue::take($wire, ext)?,
                    )*
                })
            }

            #[allow(unused_variables)]
            fn write_ext_fields(&self, ext: &mut $crate::codec::ExtFields) {
                $(
                    if let Some(v) = $crate::header::field::FieldValue::write(&self.$field) {
                        ext.insert($wire, v);
                    }
                )*
            }
        }
    };
}

pub(crate) use command_header;
