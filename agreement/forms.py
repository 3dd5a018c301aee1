"""Report filters from a query string (pages, downloads, API and the command share them)."""

from __future__ import annotations

from django import forms

from agreement.selectors import ReportFilters
from annotations.models import ImageSource
from core.vocabulary import EMOTIONS


class ReportFilterForm(forms.Form):
    source = forms.ChoiceField(choices=[("", "any source"), *ImageSource.choices], required=False)
    label = forms.ChoiceField(required=False, help_text="The image's current label.")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                help_text="Reviews submitted on or after (YYYY-MM-DD).")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                              help_text="Reviews submitted on or before (YYYY-MM-DD).")
    reviewer = forms.MultipleChoiceField(required=False, help_text="Only these reviewers (default: all).")

    def __init__(self, *args, reviewers: list[str], labels: tuple[str, ...] = EMOTIONS, **kwargs):
        """``labels``: the dataset's taxonomy's."""
        super().__init__(*args, **kwargs)
        self.fields["reviewer"].choices = [(r, r) for r in reviewers]
        self.fields["label"].choices = [("", "any label"), *((e, e.capitalize()) for e in labels)]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> ReportFilters:
        """The cleaned filters; call after ``is_valid()``."""
        data = self.cleaned_data
        return ReportFilters(source=data["source"], label=data["label"], date_from=data["date_from"],
                             date_to=data["date_to"], reviewers=tuple(sorted(data["reviewer"])))

    def error_text(self) -> str:
        return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in self.errors.items())
