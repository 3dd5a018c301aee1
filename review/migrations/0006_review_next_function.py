"""``review_next``: ``POST /api/review/next/`` on PostgreSQL in one statement, the payload's JSON
built by the database (issue 16).

The function finds the dataset by slug, claims with ``review_claim`` (migration ``review.0005``),
then reads what the review page shows, each step a statement of its own with a fresh snapshot
(READ COMMITTED), so everything is read after the claim, as the separate queries read it before:
the image row, its latest version, its current model and import answers (each as the JSON of
``review.selectors.annotation_payload``, its triplets and elements included; its critic as JSON
text) and the reviewer's draft. Which answer is the base and which annotators belong to the latest
run stays in Python (``review.selectors.lease_payload_json``), on the metadata returned with them.

No row: no dataset with that slug. A row without a lease: nothing left for this reviewer. A slot
lost to a race raises ``unique_violation`` from ``review_claim``, retried by the caller.

The JSON is the review API's: datetimes as DRF writes them (``…T12:04:45.126332Z``, no fraction
when there is none), keys of an element only when set (``annotations.selectors.element_to_dict``),
a triplet's roles in ``core.vocabulary.ROLES`` order. One difference, in form only: a float that
is a whole number is written ``64`` where Python writes ``64.0``.
"""

from django.db import migrations

# review.selectors.annotation_payload of the annotation ``a``, as JSON (written into review_next's
# query rather than called as a function of its own, so that its plan is cached with the function's).
ANNOTATION_JSON = """json_build_object(
        'id', a.id, 'version', a.version, 'kind', a.kind, 'author_name', a.author_name,
        'pipeline_version', a.pipeline_version, 'decision', a.decision, 'decision_reason', a.decision_reason,
        'triplets', coalesce((
            SELECT json_agg(s.triplet ORDER BY s.index) FROM (
                SELECT t.index, ('{"key":' || to_json(t.key::text)::text || string_agg(
                    ',' || to_json(e.role::text)::text || ':' || json_strip_nulls(json_build_object(
                        'phrase', e.phrase,
                        'box', CASE WHEN e.x0 IS NOT NULL THEN json_build_array(e.x0, e.y0, e.x1, e.y1) END,
                        'box_score', e.box_score,
                        'mask', CASE WHEN e.mask_counts IS NOT NULL
                                     THEN json_build_object('size', json_build_array(e.mask_height, e.mask_width),
                                                            'counts', e.mask_counts) END,
                        'mask_score', e.mask_score,
                        'status', nullif(e.status, 'pending')))::text,
                    '' ORDER BY array_position(ARRAY['background', 'attribute', 'subject']::text[], e.role::text))
                    || '}')::json AS triplet
                  FROM annotations_triplet t JOIN annotations_element e ON e.triplet_id = t.id
                 WHERE t.annotation_id = a.id
                 GROUP BY t.id
            ) AS s), '[]'::json),
        'ces', CASE WHEN coalesce(a.ces_label, '') <> ''
                    THEN json_build_object('label', a.ces_label, 'confidence', a.ces_confidence,
                                           'distribution', a.ces_distribution) END,
        'rationale', a.rationale,
        'created_at', review_iso_datetime(a.created_at))"""

NEXT_SQL = """
CREATE OR REPLACE FUNCTION review_iso_datetime(p_at timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN to_char(p_at AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
                   ELSE '.' || to_char(p_at AT TIME ZONE 'UTC', 'US') END
           || 'Z'
$$;

CREATE OR REPLACE FUNCTION review_next(p_slug text, p_reviewer bigint, p_draw double precision, p_now timestamptz)
RETURNS TABLE (
    ds_id bigint, ds_slug text, ds_require_all_checked boolean,
    ls_id bigint, ls_expires_at timestamptz, ls_version integer,
    im_id bigint, im_width integer, im_height integer, im_source text, im_status text, im_original_name text,
    im_latest_version integer, answers text, answer_payloads text[], answer_critics text[],
    dr_id bigint, dr_payload text, dr_saved_at timestamptz
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    d annotations_dataset%%ROWTYPE;
    l review_lease%%ROWTYPE;
BEGIN
    SELECT * INTO d FROM annotations_dataset WHERE slug = p_slug;
    IF NOT FOUND THEN
        RETURN;  -- no row: no such dataset
    END IF;
    ds_id := d.id;
    ds_slug := d.slug;
    ds_require_all_checked := d.require_all_checked;
    -- review.queue: the audit side first with probability audit_fraction (p_draw is uniform on [0, 1)).
    SELECT * INTO l FROM review_claim(d.id, p_reviewer, p_draw < d.audit_fraction, p_now, d.audit_fraction,
                                      d.reviews_per_item, d.overlap_fraction, d.lease_minutes);
    IF NOT FOUND THEN
        RETURN NEXT;  -- a row without a lease: nothing left for this reviewer
        RETURN;
    END IF;
    ls_id := l.id;
    ls_expires_at := l.expires_at;
    ls_version := l.version;
    SELECT im.id, im.width, im.height, im.source, im.status, im.original_name
      INTO im_id, im_width, im_height, im_source, im_status, im_original_name
      FROM annotations_image im WHERE im.id = l.image_id;
    SELECT coalesce(max(a.version), 0) INTO im_latest_version FROM annotations_annotation a WHERE a.image_id = l.image_id;
    -- annotations.selectors.image_review_sources: the current model and import answers, by author name.
    SELECT json_agg(json_build_object('id', a.id, 'kind', a.kind, 'author_name', a.author_name, 'version', a.version,
                                      'pipeline_version', a.pipeline_version, 'ces_label', a.ces_label)
                    ORDER BY a.author_name COLLATE "C", a.id)::text,
           array_agg(({annotation_json})::text ORDER BY a.author_name COLLATE "C", a.id),
           array_agg(a.critic::text ORDER BY a.author_name COLLATE "C", a.id)
      INTO answers, answer_payloads, answer_critics
      FROM annotations_annotation a
     WHERE a.image_id = l.image_id AND a.is_current AND a.kind IN ('model', 'import');
    SELECT dr.id, dr.payload::text, dr.saved_at INTO dr_id, dr_payload, dr_saved_at
      FROM review_draft dr WHERE dr.image_id = l.image_id AND dr.reviewer_id = p_reviewer;
    RETURN NEXT;
END
$$;
"""

DROP_SQL = """
DROP FUNCTION IF EXISTS review_next(text, bigint, double precision, timestamptz);
DROP FUNCTION IF EXISTS review_iso_datetime(timestamptz);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite builds the payload in Python (review.selectors.lease_payload)
    schema_editor.execute(NEXT_SQL.format(annotation_json=ANNOTATION_JSON))


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0005_review_claim_function"),
        ("annotations", "0010_dataset_taxonomy"),
    ]

    operations = [migrations.RunPython(create_functions, drop_functions)]
