//! Adaptive Card templates, expanded the way the Adaptive Cards Designer
//! expands them.
//!
//! A template is a JSON document written with the official Adaptive Card
//! Templating syntax. Expansion walks the *parsed* JSON tree and replaces
//! values, so data can never break out of the string it lands in: a
//! justification full of quotes and braces is still one JSON string.
//!
//! The supported subset is what Cordon's cards need:
//!
//! - `"${expr}"` as a whole string becomes the value itself (number, bool,
//!   array, object); `"text ${expr} more"` becomes a string;
//! - `$data` on an element binds its scope: an array repeats the element once
//!   per item, anything else becomes the scope;
//! - `$when` drops the element when its expression is not true;
//! - expressions: paths (`a.b`, `a[0]`, `$root.x`, `$data`, `$index`),
//!   literals (`'text'`, numbers, `true`, `false`, `null`), `==`, `!=`, `&&`,
//!   `||`, `!`, parentheses and the functions `exists`, `empty`, `count`,
//!   `if` and `join`.
//!
//! Like the official engine, a path that leads nowhere is `null` (and the
//! empty string inside text). [`Template::missing_paths`] reports such paths
//! so that tests can keep templates and their sample data in step. Only
//! `null` and `false` count as false; use `empty()` to test for "".
//!
//! This module never reads files and knows nothing about Teams; it only
//! turns a template and a data value into JSON.

use serde_json::{Map, Value};

/// Why a template could not be read.
///
/// Every variant names the template and, where there is one, the expression
/// at fault. All of them are programming errors in a card template, caught
/// when the template is parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template is not JSON at all.
    #[error("card template {template} is not valid JSON; {reason}")]
    Json {
        template: &'static str,
        reason: String,
    },
    /// An expression, or the `${...}` around it, cannot be parsed.
    #[error("card template {template}: cannot read `{expression}`; {reason}")]
    Syntax {
        template: &'static str,
        expression: String,
        reason: String,
    },
    /// An expression calls a function the engine does not have.
    #[error(
        "card template {template}: unknown function `{function}` in \
         `{expression}`; known: exists, empty, count, if, join"
    )]
    UnknownFunction {
        template: &'static str,
        expression: String,
        function: String,
    },
    /// A known function is called with the wrong number of arguments.
    #[error(
        "card template {template}: `{function}` takes {expected} \
         argument(s) but `{expression}` gives {given}"
    )]
    Arity {
        template: &'static str,
        expression: String,
        function: String,
        expected: usize,
        given: usize,
    },
}

/// A parsed card template, ready to be expanded over data.
#[derive(Debug, Clone)]
pub struct Template {
    name: &'static str,
    tree: Value,
}

impl Template {
    /// Reads a template and checks every expression in it.
    pub fn parse(name: &'static str, json: &str) -> Result<Self, TemplateError> {
        let tree = serde_json::from_str(json).map_err(|e| TemplateError::Json {
            template: name,
            reason: e.to_string(),
        })?;
        let template = Template { name, tree };
        template.check_expressions(&template.tree)?;
        Ok(template)
    }

    /// The name the template was parsed with.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Expands the template over `data`.
    ///
    /// A template whose root element is dropped by `$when` expands to
    /// `null`.
    pub fn expand(&self, data: &Value) -> Result<Value, TemplateError> {
        let mut expander = Expander::new(self.name, false);
        expander.root_value(&self.tree, data)
    }

    /// The paths the template reads that `data` does not have.
    ///
    /// Every element is visited, including those a `$when` would drop, so
    /// one sample can vouch for every branch. An empty array bound with
    /// `$data` is reported too, since its items could not be checked.
    pub fn missing_paths(&self, data: &Value) -> Result<Vec<String>, TemplateError> {
        let mut expander = Expander::new(self.name, true);
        expander.root_value(&self.tree, data)?;
        Ok(expander.missing)
    }

    fn check_expressions(&self, value: &Value) -> Result<(), TemplateError> {
        match value {
            Value::String(text) => {
                split_text(self.name, text).and_then(|pieces| self.check_pieces(&pieces))
            }
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| self.check_expressions(item)),
            Value::Object(map) => map
                .values()
                .try_for_each(|item| self.check_expressions(item)),
            _ => Ok(()),
        }
    }

    fn check_pieces(&self, pieces: &[Piece]) -> Result<(), TemplateError> {
        for piece in pieces {
            if let Piece::Expression(source) = piece {
                Expr::parse(self.name, source)?;
            }
        }
        Ok(())
    }
}

/// A part of a template string: literal text or the inside of a `${...}`.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Expression(String),
}

/// Splits a template string into text and `${...}` expressions.
///
/// A `}` inside a quoted string literal does not close the expression.
fn split_text(template: &'static str, text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        let body = &rest[start + 2..];
        let end = closing_brace(body).ok_or_else(|| TemplateError::Syntax {
            template,
            expression: text.to_string(),
            reason: "`${` is never closed; missing `}`".to_string(),
        })?;
        pieces.push(Piece::Expression(body[..end].to_string()));
        rest = &body[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// The byte offset of the `}` that ends an expression body.
fn closing_brace(body: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (offset, c) in body.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '\'') => in_string = false,
            (false, _, '\'') => in_string = true,
            (false, _, '}') => return Some(offset),
            _ => {}
        }
    }
    None
}

/// Where expressions look names up.
#[derive(Clone, Copy)]
struct Scope<'a> {
    data: &'a Value,
    root: &'a Value,
    index: Option<usize>,
}

/// What expanding one template value gives.
enum Expanded {
    /// `$when` was false: the element disappears.
    Dropped,
    One(Value),
    /// `$data` bound an array: the element was repeated.
    Many(Vec<Value>),
}

/// One expansion run; in checking mode it also gathers missing paths.
struct Expander {
    template: &'static str,
    checking: bool,
    missing: Vec<String>,
}

impl Expander {
    fn new(template: &'static str, checking: bool) -> Self {
        Expander {
            template,
            checking,
            missing: Vec::new(),
        }
    }

    fn root_value(&mut self, tree: &Value, data: &Value) -> Result<Value, TemplateError> {
        let scope = Scope {
            data,
            root: data,
            index: None,
        };
        Ok(match self.value(tree, scope)? {
            Expanded::Dropped => Value::Null,
            Expanded::One(value) => value,
            Expanded::Many(values) => Value::Array(values),
        })
    }

    fn value(&mut self, value: &Value, scope: Scope) -> Result<Expanded, TemplateError> {
        Ok(match value {
            Value::String(text) => Expanded::One(self.text(text, scope)?),
            Value::Array(items) => Expanded::One(self.array(items, scope)?),
            Value::Object(map) => self.object(map, scope)?,
            other => Expanded::One(other.clone()),
        })
    }

    fn array(&mut self, items: &[Value], scope: Scope) -> Result<Value, TemplateError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match self.value(item, scope)? {
                Expanded::Dropped => {}
                Expanded::One(value) => out.push(value),
                Expanded::Many(values) => out.extend(values),
            }
        }
        Ok(Value::Array(out))
    }

    /// An object, after binding its `$data` if it has one.
    fn object(
        &mut self,
        map: &Map<String, Value>,
        scope: Scope,
    ) -> Result<Expanded, TemplateError> {
        let Some(binding) = map.get("$data") else {
            return self.element(map, scope);
        };
        let bound = match binding {
            Value::String(text) => self.text(text, scope)?,
            other => other.clone(),
        };
        match &bound {
            Value::Array(items) => self.repeated(map, items, binding, scope),
            data => self.element(map, Scope { data, ..scope }),
        }
    }

    /// The element once per item of the array bound by its `$data`.
    fn repeated(
        &mut self,
        map: &Map<String, Value>,
        items: &[Value],
        binding: &Value,
        scope: Scope,
    ) -> Result<Expanded, TemplateError> {
        if self.checking && items.is_empty() {
            self.missing
                .push(format!("{binding}: empty, so its items go unchecked"));
        }
        let mut out = Vec::with_capacity(items.len());
        for (index, data) in items.iter().enumerate() {
            let item_scope = Scope {
                data,
                root: scope.root,
                index: Some(index),
            };
            if let Expanded::One(value) = self.element(map, item_scope)? {
                out.push(value);
            }
        }
        Ok(Expanded::Many(out))
    }

    /// An object in its own scope: `$when` decides, then every property.
    fn element(
        &mut self,
        map: &Map<String, Value>,
        scope: Scope,
    ) -> Result<Expanded, TemplateError> {
        let shown = match map.get("$when") {
            Some(Value::String(text)) => truthy(&self.text(text, scope)?),
            Some(other) => truthy(other),
            None => true,
        };
        if !shown && !self.checking {
            return Ok(Expanded::Dropped);
        }
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
            if key == "$data" || key == "$when" {
                continue;
            }
            match self.value(value, scope)? {
                Expanded::Dropped => {}
                Expanded::One(value) => {
                    out.insert(key.clone(), value);
                }
                Expanded::Many(values) => {
                    out.insert(key.clone(), Value::Array(values));
                }
            }
        }
        Ok(if shown {
            Expanded::One(Value::Object(out))
        } else {
            Expanded::Dropped
        })
    }

    /// A template string: a whole expression keeps its type, text stays text.
    fn text(&mut self, text: &str, scope: Scope) -> Result<Value, TemplateError> {
        let pieces = split_text(self.template, text)?;
        if let [Piece::Expression(source)] = pieces.as_slice() {
            return self.evaluate(source, scope);
        }
        let mut out = String::with_capacity(text.len());
        for piece in &pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Expression(source) => {
                    out.push_str(&stringify(&self.evaluate(source, scope)?))
                }
            }
        }
        Ok(Value::String(out))
    }

    fn evaluate(&mut self, source: &str, scope: Scope) -> Result<Value, TemplateError> {
        let expr = Expr::parse(self.template, source)?;
        let Evaluated { value, missing } = expr.evaluate(&scope);
        if self.checking {
            self.missing
                .extend(missing.into_iter().map(|path| format!("{source}: {path}")));
        }
        Ok(value)
    }
}

/// Only `null` and `false` are false.
fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// How a value reads inside text: strings bare, `null` as nothing.
fn stringify(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A parsed `${...}` expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    /// The current scope (`$data`, or a bare name's starting point).
    Scope,
    /// `$root`: the data the whole template was expanded over.
    Root,
    /// `$index`: the position of the current `$data` item.
    Index,
    /// `base.name` or `base[key]`; `source` is how the path was written.
    Member {
        base: Box<Expr>,
        key: Box<Expr>,
        source: String,
    },
    Not(Box<Expr>),
    Binary(Operator, Box<Expr>, Box<Expr>),
    Call(Function, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    And,
    Or,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Exists,
    Empty,
    Count,
    If,
    Join,
}

impl Function {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "exists" => Function::Exists,
            "empty" => Function::Empty,
            "count" => Function::Count,
            "if" => Function::If,
            "join" => Function::Join,
            _ => return None,
        })
    }

    fn arity(self) -> usize {
        match self {
            Function::Exists | Function::Empty | Function::Count => 1,
            Function::Join => 2,
            Function::If => 3,
        }
    }
}

/// The value of an expression and, for checking, the paths it missed.
struct Evaluated {
    value: Value,
    missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Text(String),
    Number(serde_json::Number),
    Dot,
    Comma,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Not,
    Equal,
    NotEqual,
    And,
    Or,
}

/// Splits an expression into tokens; the error is the reason.
fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                at += 1;
                continue;
            }
            ('=', Some('=')) => (Token::Equal, 2),
            ('!', Some('=')) => (Token::NotEqual, 2),
            ('&', Some('&')) => (Token::And, 2),
            ('|', Some('|')) => (Token::Or, 2),
            ('!', _) => (Token::Not, 1),
            ('.', _) => (Token::Dot, 1),
            (',', _) => (Token::Comma, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            ('[', _) => (Token::OpenBracket, 1),
            (']', _) => (Token::CloseBracket, 1),
            ('\'', _) => string_literal(&chars[at..])?,
            (c, _) if c.is_ascii_digit() => number(&chars[at..])?,
            (c, _) if c == '$' || c == '_' || c.is_alphabetic() => name(&chars[at..]),
            (c, _) => return Err(format!("unexpected `{c}`")),
        };
        tokens.push(token);
        at += width;
    }
    Ok(tokens)
}

/// A `'...'` literal at the start of `chars`; `\'` and `\\` escape.
fn string_literal(chars: &[char]) -> Result<(Token, usize), String> {
    let mut text = String::new();
    let mut at = 1;
    while let Some(&c) = chars.get(at) {
        match c {
            '\'' => return Ok((Token::Text(text), at + 1)),
            '\\' => {
                let escaped = chars.get(at + 1).ok_or("unfinished `\\` escape")?;
                text.push(*escaped);
                at += 2;
            }
            c => {
                text.push(c);
                at += 1;
            }
        }
    }
    Err("string literal never closed; missing `'`".to_string())
}

fn number(chars: &[char]) -> Result<(Token, usize), String> {
    let width = chars
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == '.')
        .count();
    let text: String = chars[..width].iter().collect();
    let parsed = serde_json::from_str::<serde_json::Number>(&text)
        .map_err(|_| format!("`{text}` is not a number"))?;
    Ok((Token::Number(parsed), width))
}

fn name(chars: &[char]) -> (Token, usize) {
    let width = 1 + chars[1..]
        .iter()
        .take_while(|c| **c == '_' || c.is_alphanumeric())
        .count();
    (Token::Name(chars[..width].iter().collect()), width)
}

/// Recursive descent over the tokens of one expression.
struct Parser<'s> {
    template: &'static str,
    source: &'s str,
    tokens: Vec<Token>,
    at: usize,
}

impl Expr {
    fn parse(template: &'static str, source: &str) -> Result<Expr, TemplateError> {
        let syntax = |reason: String| TemplateError::Syntax {
            template,
            expression: source.to_string(),
            reason,
        };
        let tokens = tokenize(source).map_err(syntax)?;
        let mut parser = Parser {
            template,
            source,
            tokens,
            at: 0,
        };
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(expr),
            Some(token) => Err(parser.syntax(format!("unexpected {token:?} after the expression"))),
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, token: &Token) -> bool {
        let found = self.peek() == Some(token);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), TemplateError> {
        if self.eat(&token) {
            Ok(())
        } else {
            Err(self.syntax(format!("expected {what}")))
        }
    }

    fn syntax(&self, reason: String) -> TemplateError {
        TemplateError::Syntax {
            template: self.template,
            expression: self.source.to_string(),
            reason,
        }
    }

    fn or(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            left = Expr::Binary(Operator::Or, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.equality()?;
        while self.eat(&Token::And) {
            let right = self.equality()?;
            left = Expr::Binary(Operator::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.unary()?;
        loop {
            let operator = if self.eat(&Token::Equal) {
                Operator::Equal
            } else if self.eat(&Token::NotEqual) {
                Operator::NotEqual
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Binary(operator, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, TemplateError> {
        if self.eat(&Token::Not) {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let start = self.at;
        let mut expr = self.primary()?;
        loop {
            let key = if self.eat(&Token::Dot) {
                match self.tokens.get(self.at).cloned() {
                    Some(Token::Name(name)) => {
                        self.at += 1;
                        Expr::Literal(Value::String(name))
                    }
                    _ => return Err(self.syntax("expected a name after `.`".into())),
                }
            } else if self.eat(&Token::OpenBracket) {
                let key = self.or()?;
                self.expect(Token::CloseBracket, "`]`")?;
                key
            } else {
                return Ok(expr);
            };
            let source = self.written(start);
            expr = Expr::Member {
                base: Box::new(expr),
                key: Box::new(key),
                source,
            };
        }
    }

    /// The tokens from `start` up to here, written back as a path.
    fn written(&self, start: usize) -> String {
        self.tokens[start..self.at]
            .iter()
            .map(|token| match token {
                Token::Name(name) => name.clone(),
                Token::Text(text) => format!("'{text}'"),
                Token::Number(number) => number.to_string(),
                Token::Dot => ".".into(),
                Token::OpenBracket => "[".into(),
                Token::CloseBracket => "]".into(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn primary(&mut self) -> Result<Expr, TemplateError> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Text(text)) => Ok(Expr::Literal(Value::String(text))),
            Some(Token::Number(number)) => Ok(Expr::Literal(Value::Number(number))),
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(Token::Close, "`)`")?;
                Ok(inner)
            }
            Some(Token::Name(name)) => self.named(name),
            Some(other) => Err(self.syntax(format!("unexpected {other:?}"))),
            None => Err(self.syntax("the expression ends too early".into())),
        }
    }

    /// A name: keyword, `$` variable, function call or the start of a path.
    fn named(&mut self, name: String) -> Result<Expr, TemplateError> {
        if self.peek() == Some(&Token::Open) {
            return self.call(name);
        }
        Ok(match name.as_str() {
            "true" => Expr::Literal(Value::Bool(true)),
            "false" => Expr::Literal(Value::Bool(false)),
            "null" => Expr::Literal(Value::Null),
            "$data" => Expr::Scope,
            "$root" => Expr::Root,
            "$index" => Expr::Index,
            _ if name.starts_with('$') => {
                return Err(self.syntax(format!("unknown variable `{name}`")))
            }
            _ => Expr::Member {
                base: Box::new(Expr::Scope),
                key: Box::new(Expr::Literal(Value::String(name.clone()))),
                source: name,
            },
        })
    }

    fn call(&mut self, name: String) -> Result<Expr, TemplateError> {
        let function = Function::named(&name).ok_or_else(|| TemplateError::UnknownFunction {
            template: self.template,
            expression: self.source.to_string(),
            function: name.clone(),
        })?;
        self.expect(Token::Open, "`(`")?;
        let mut arguments = Vec::new();
        if !self.eat(&Token::Close) {
            loop {
                arguments.push(self.or()?);
                if self.eat(&Token::Close) {
                    break;
                }
                self.expect(Token::Comma, "`,` or `)`")?;
            }
        }
        if arguments.len() != function.arity() {
            return Err(TemplateError::Arity {
                template: self.template,
                expression: self.source.to_string(),
                function: name,
                expected: function.arity(),
                given: arguments.len(),
            });
        }
        Ok(Expr::Call(function, arguments))
    }
}

impl Expr {
    /// Evaluates in `scope`; never fails, a wrong path is `null`.
    ///
    /// Both sides of `&&` and `||` and every argument of `if` are
    /// evaluated, so that checking sees every path an expression reads.
    fn evaluate(&self, scope: &Scope) -> Evaluated {
        let mut missing = Vec::new();
        let value = self.value(scope, &mut missing);
        Evaluated { value, missing }
    }

    fn value(&self, scope: &Scope, missing: &mut Vec<String>) -> Value {
        match self {
            Expr::Literal(value) => value.clone(),
            Expr::Scope => scope.data.clone(),
            Expr::Root => scope.root.clone(),
            Expr::Index => scope.index.map_or(Value::Null, Value::from),
            Expr::Member { base, key, source } => {
                let base = base.value(scope, missing);
                let key = key.value(scope, missing);
                member(&base, &key).unwrap_or_else(|| {
                    missing.push(format!("`{source}` is not in the data"));
                    Value::Null
                })
            }
            Expr::Not(inner) => Value::Bool(!truthy(&inner.value(scope, missing))),
            Expr::Binary(operator, left, right) => {
                let left = left.value(scope, missing);
                let right = right.value(scope, missing);
                Value::Bool(operator.apply(&left, &right))
            }
            Expr::Call(function, arguments) => {
                let arguments: Vec<Value> = arguments
                    .iter()
                    .map(|argument| argument.value(scope, missing))
                    .collect();
                function.apply(&arguments)
            }
        }
    }
}

/// `base[key]`; `None` when the data has no such member.
///
/// A member of `null` is `null` and not missing: the data said "nothing".
fn member(base: &Value, key: &Value) -> Option<Value> {
    match (base, key) {
        (Value::Null, _) => Some(Value::Null),
        (Value::Object(map), Value::String(name)) => map.get(name).cloned(),
        (Value::Array(items), Value::Number(index)) => index
            .as_u64()
            .and_then(|index| items.get(usize::try_from(index).ok()?))
            .cloned(),
        _ => None,
    }
}

impl Operator {
    fn apply(self, left: &Value, right: &Value) -> bool {
        match self {
            Operator::And => truthy(left) && truthy(right),
            Operator::Or => truthy(left) || truthy(right),
            Operator::Equal => same(left, right),
            Operator::NotEqual => !same(left, right),
        }
    }
}

/// Equality where `1` and `1.0` are the same number.
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

impl Function {
    fn apply(self, arguments: &[Value]) -> Value {
        match (self, arguments) {
            (Function::Exists, [value]) => Value::Bool(!value.is_null()),
            (Function::Empty, [value]) => Value::Bool(is_empty(value)),
            (Function::Count, [value]) => Value::from(count(value)),
            (Function::If, [condition, then, otherwise]) => {
                if truthy(condition) { then } else { otherwise }.clone()
            }
            (Function::Join, [Value::Array(items), separator]) => {
                let parts: Vec<String> = items.iter().map(stringify).collect();
                Value::String(parts.join(&stringify(separator)))
            }
            (Function::Join, _) => Value::String(String::new()),
            _ => Value::Null,
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn count(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expand(template: &str, data: Value) -> Value {
        Template::parse("test", template)
            .expect("template parses")
            .expand(&data)
            .expect("template expands")
    }

    #[test]
    fn a_whole_string_expression_keeps_the_type_of_its_value() {
        let out = expand(
            r#"{"n": "${n}", "b": "${b}", "list": "${list}", "o": "${o}"}"#,
            json!({"n": 3, "b": true, "list": [1, 2], "o": {"k": "v"}}),
        );
        assert_eq!(
            out,
            json!({"n": 3, "b": true, "list": [1, 2], "o": {"k": "v"}})
        );
    }

    #[test]
    fn expressions_inside_text_are_interpolated() {
        let out = expand(
            r#"{"text": "Request ${id}: ${n} of ${m}${missing}!"}"#,
            json!({"id": "r-1", "n": 1, "m": 2}),
        );
        assert_eq!(out, json!({"text": "Request r-1: 1 of 2!"}));
    }

    #[test]
    fn data_text_that_looks_like_json_or_templates_stays_one_string() {
        let hostile = "\"}], \"type\": \"Action.OpenUrl\" ${secret} {";
        let out = expand(
            r#"{"text": "${x}", "quoted": "Said: ${x}"}"#,
            json!({"x": hostile, "secret": "leak"}),
        );
        assert_eq!(out["text"], json!(hostile));
        assert_eq!(out["quoted"], json!(format!("Said: {hostile}")));
    }

    #[test]
    fn paths_follow_properties_indexes_and_root() {
        let out = expand(
            r#"{"$data": "${inner}", "a": "${a.b}", "i": "${list[1]}",
                "k": "${a['b']}", "r": "${$root.top}", "d": "${$data.a.b}"}"#,
            json!({"top": "T", "inner": {"a": {"b": "B"}, "list": [0, 7]}}),
        );
        assert_eq!(out, json!({"a": "B", "i": 7, "k": "B", "r": "T", "d": "B"}));
    }

    #[test]
    fn missing_paths_are_null_as_a_value_and_empty_in_text() {
        let out = expand(
            r#"{"v": "${nope.deeper}", "t": "[${nope}]", "i": "${list[9]}"}"#,
            json!({"list": []}),
        );
        assert_eq!(out, json!({"v": null, "t": "[]", "i": null}));
    }

    #[test]
    fn an_array_bound_with_data_repeats_the_element_per_item() {
        let out = expand(
            r#"{"items": [
                {"type": "Head"},
                {"$data": "${steps}", "text": "${$index}: ${label} of ${$root.n}"},
                {"type": "Tail"}
            ]}"#,
            json!({"n": 2, "steps": [{"label": "a"}, {"label": "b"}]}),
        );
        assert_eq!(
            out["items"],
            json!([
                {"type": "Head"},
                {"text": "0: a of 2"},
                {"text": "1: b of 2"},
                {"type": "Tail"}
            ])
        );
    }

    #[test]
    fn an_empty_bound_array_removes_the_element() {
        let out = expand(
            r#"{"items": [{"$data": "${steps}", "text": "${label}"}]}"#,
            json!({"steps": []}),
        );
        assert_eq!(out, json!({"items": []}));
    }

    #[test]
    fn when_drops_elements_and_properties_whose_condition_is_false() {
        let out = expand(
            r#"{"items": [
                {"$when": "${show}", "text": "shown"},
                {"$when": "${!show}", "text": "hidden"},
                {"$when": "${nothing}", "text": "null is false"}
            ],
            "extra": {"$when": "${false}", "x": 1}}"#,
            json!({"show": true}),
        );
        assert_eq!(out, json!({"items": [{"text": "shown"}]}));
    }

    #[test]
    fn when_is_evaluated_per_repeated_item() {
        let out = expand(
            r#"[{"$data": "${steps}", "$when": "${status != 'done'}",
                 "text": "${label}"}]"#,
            json!({"steps": [
                {"label": "a", "status": "done"},
                {"label": "b", "status": "failed"}
            ]}),
        );
        assert_eq!(out, json!([{"text": "b"}]));
    }

    #[test]
    fn operators_combine_with_the_usual_precedence() {
        let out = expand(
            r#"{"a": "${x == 'a' || x == 'b' && y}",
                "b": "${(x == 'a' || x == 'b') && y}",
                "c": "${!(n == 2.0)}", "d": "${x != 'a'}"}"#,
            json!({"x": "a", "y": false, "n": 2}),
        );
        assert_eq!(out, json!({"a": true, "b": false, "c": false, "d": false}));
    }

    #[test]
    fn functions_exists_empty_count_if_and_join_work() {
        let out = expand(
            r#"{"e1": "${exists(a)}", "e2": "${exists(none)}",
                "m1": "${empty('')}", "m2": "${empty(list)}", "m3": "${empty(a)}",
                "c": "${count(list)}", "c0": "${count(none)}",
                "i": "${if(count(list) == 2, 'two', 'other')}",
                "j": "${join(list, ', ')}", "jn": "${join(none, ', ')}"}"#,
            json!({"a": "x", "list": ["p", "q"]}),
        );
        let expected = json!({
            "e1": true, "e2": false, "m1": true, "m2": false, "m3": false,
            "c": 2, "c0": 0, "i": "two", "j": "p, q", "jn": ""
        });
        assert_eq!(out, expected);
    }

    #[test]
    fn a_brace_inside_a_string_literal_does_not_end_the_expression() {
        let out = expand(r#"{"t": "${join(list, '}{')}"}"#, json!({"list": [1, 2]}));
        assert_eq!(out, json!({"t": "1}{2"}));
    }

    #[test]
    fn an_unknown_function_is_named_in_the_error() {
        let error = Template::parse("approval", r#"{"t": "${upper(name)}"}"#)
            .expect_err("unknown function");
        let message = error.to_string();
        assert!(message.contains("approval"), "{message}");
        assert!(message.contains("upper"), "{message}");
        assert!(matches!(error, TemplateError::UnknownFunction { .. }));
    }

    #[test]
    fn bad_syntax_names_the_template_and_the_expression() {
        for source in [
            r#"{"t": "${a ==}"}"#,
            r#"{"t": "${a b}"}"#,
            r#"{"t": "${(a}"}"#,
            r#"{"t": "${'open}"}"#,
            r#"{"t": "${a"}"#,
            r#"{"t": "${a.}"}"#,
            r#"{"t": "${$nope}"}"#,
            r#"{"t": "${a = b}"}"#,
        ] {
            let error = Template::parse("progress", source).expect_err(source);
            let message = error.to_string();
            assert!(matches!(error, TemplateError::Syntax { .. }), "{source}");
            assert!(message.contains("progress"), "{message}");
        }
    }

    #[test]
    fn a_function_with_the_wrong_number_of_arguments_is_refused() {
        let error = Template::parse("t", r#"{"t": "${if(a, b)}"}"#).unwrap_err();
        assert!(matches!(
            error,
            TemplateError::Arity {
                expected: 3,
                given: 2,
                ..
            }
        ));
    }

    #[test]
    fn a_template_that_is_not_json_is_refused() {
        let error = Template::parse("t", "{not json").unwrap_err();
        assert!(matches!(error, TemplateError::Json { .. }));
    }

    #[test]
    fn missing_paths_are_reported_in_every_branch_and_item() {
        let template = Template::parse(
            "t",
            r#"{"items": [
                {"$when": "${false}", "text": "${hidden_field}"},
                {"$data": "${steps}", "text": "${label} ${nope}"},
                {"text": "${if(ok, present, absent)}"}
            ]}"#,
        )
        .unwrap();
        let data = json!({"ok": true, "present": 1, "steps": [{"label": "a"}]});
        let missing = template.missing_paths(&data).unwrap();
        assert_eq!(missing.len(), 3, "{missing:?}");
        for name in ["hidden_field", "nope", "absent"] {
            assert!(missing.iter().any(|m| m.contains(name)), "{missing:?}");
        }
    }

    #[test]
    fn null_values_and_present_keys_are_not_missing() {
        let template = Template::parse("t", r#"{"a": "${dept}", "b": "${dept.name}"}"#).unwrap();
        let missing = template.missing_paths(&json!({"dept": null})).unwrap();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn an_empty_sample_array_is_reported_because_items_go_unchecked() {
        let template = Template::parse("t", r#"[{"$data": "${steps}", "t": "${x}"}]"#).unwrap();
        let missing = template.missing_paths(&json!({"steps": []})).unwrap();
        assert_eq!(missing.len(), 1, "{missing:?}");
    }
}
