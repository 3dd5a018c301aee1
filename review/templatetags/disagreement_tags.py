"""Short, safe renderings of disagreement values (labels, phrases, boxes, masks) for tables."""

from django import template

register = template.Library()


@register.filter
def short_value(value) -> str:
    """A label or phrase as is; a box as rounded numbers; a mask as its size; an element as its phrase."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(f"{v:.0f}" for v in value) + "]"
    if isinstance(value, dict) and "counts" in value:
        return "mask {}×{}".format(*value.get("size", ["?", "?"]))
    if isinstance(value, dict) and "phrase" in value:
        return value["phrase"] + (" " + short_value(value["box"]) if "box" in value else "")
    return str(value)
