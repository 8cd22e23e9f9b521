-- Webhook URLs and custom header values became templates (SPEC §11): `$` now starts a
-- reference to a parameter and `$$` is a literal `$`. Webhooks saved before meant every `$`
-- literally, so each one is doubled here, and they send exactly what they sent before.
UPDATE webhooks SET spec = json_set(spec,
    '$.url', replace(json_extract(spec, '$.url'), '$', '$$'),
    '$.headers', (SELECT json_group_array(
                      json_set(h.value, '$.value', replace(json_extract(h.value, '$.value'), '$', '$$')))
                  FROM json_each(spec, '$.headers') AS h))
WHERE instr(spec, '$') > 0;
