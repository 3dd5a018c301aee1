from django import forms


class PreannotateForm(forms.Form):
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many images (empty: all).")
    force = forms.BooleanField(required=False, help_text="Also re-run images already pre-annotated with this pipeline version.")
