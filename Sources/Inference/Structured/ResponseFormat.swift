/// OpenAI's `response_format`: free text, any JSON object, or JSON matching a schema. The
/// generator enforces the JSON forms by constrained sampling over the tokenizer's vocabulary.
public enum ResponseFormat: Sendable, Equatable {
    case text
    /// `{"type": "json_object"}`: one syntactically valid JSON object.
    case jsonObject
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`; `schema` is the
    /// schema's JSON text as received.
    case jsonSchema(name: String, schema: String, strict: Bool)
}
