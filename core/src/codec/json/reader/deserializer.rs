//! The fast reader as a serde `Deserializer`: the message wire structs'
//! `Deserialize` impls drive it; whatever it cannot read is [`Bail`].

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Bail, Reader, Result};

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.ws() {
            Some(b't') => {
                self.ident(b"true")?;
                visitor.visit_bool(true)
            }
            Some(b'f') => {
                self.ident(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.signed()?;
        visitor.visit_i64(n)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = u32::try_from(self.unsigned()?).map_err(|_| Bail)?;
        visitor.visit_u32(n)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let x = self.float::<f32>()?;
        visitor.visit_f32(x)
    }

    /// A whole number as an integer (exact and cheap), anything else
    /// (`45.0`, `4.5e1`, `0.5`) through `FromStr`.
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.ws();
        let start = self.i;
        if let Ok(n) = self.signed()
            && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return visitor.visit_i64(n);
        }
        self.i = start;
        let x = self.float::<f64>()?;
        visitor.visit_f64(x)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let s = self.string()?;
        visitor.visit_borrowed_str(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.ws() == Some(b'n') {
            self.ident(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.eat(b'[')?;
        let value = visitor.visit_seq(Items {
            r: &mut *self,
            first: true,
        })?;
        self.eat(b']')?;
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.eat(b'{')?;
        let value = visitor.visit_map(Items {
            r: &mut *self,
            first: true,
        })?;
        self.eat(b'}')?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u64 u128 char bytes byte_buf unit
        unit_struct newtype_struct tuple tuple_struct enum
    }
}

/// The entries of an array or an object.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl Items<'_, '_> {
    /// Whether another entry follows; leaves the closing bracket unread.
    fn more(&mut self, close: u8) -> Result<bool> {
        let b = self.r.ws().ok_or(Bail)?;
        if b == close {
            return Ok(false);
        }
        if !self.first {
            if b != b',' {
                return Err(Bail);
            }
            self.r.i += 1;
            // `[1,]` and `{"a":1,}` are not read here.
            if self.r.ws() == Some(close) {
                return Err(Bail);
            }
        }
        self.first = false;
        Ok(true)
    }
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = Bail;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.more(b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
}

impl<'de> MapAccess<'de> for Items<'_, 'de> {
    type Error = Bail;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.more(b'}')? {
            return Ok(None);
        }
        let key = seed.deserialize(&mut *self.r)?;
        self.r.eat(b':')?;
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.r)
    }
}
