-- Webhook URLs and custom header values became templates (SPEC §11): `$` now starts a
-- reference to a parameter and `$$` is a literal `$`. Webhooks saved before meant every `$`
-- literally, so each one is doubled here, and they send exactly what they sent before.
UPDATE webhooks SET spec = jsonb_set(
    jsonb_set(spec::jsonb, '{url}', to_jsonb(replace(spec::jsonb ->> 'url', '$', '$$'))),
    '{headers}',
    COALESCE((SELECT jsonb_agg(jsonb_set(h, '{value}', to_jsonb(replace(h ->> 'value', '$', '$$'))) ORDER BY n)
              FROM jsonb_array_elements(spec::jsonb -> 'headers') WITH ORDINALITY AS t(h, n)),
             '[]'::jsonb))::text
WHERE position('$' IN spec) > 0;
