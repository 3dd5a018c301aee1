"""``/api/auth/token/``: POST a username and password for an API token; DELETE revokes
the caller's token. Wrong passwords count towards the same lockout as the login form
(django-axes): a locked-out username answers 429, even with the right password."""

from __future__ import annotations

from axes.helpers import get_cool_off, get_lockout_message
from django.contrib.auth import authenticate, user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.tokens import token_for_user, tokens_revoke


class LoginRefused(exceptions.APIException):
    """Wrong or missing credentials (400, like DRF's own token view)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Unable to log in with the username and password given."
    default_code = "login_refused"

    def __init__(self, detail: str | None = None, *, field: str | None = None):
        super().__init__(detail)
        self.field = field


class LoginLockedOut(exceptions.APIException):
    """Too many wrong passwords for this username (django-axes): 429 until the cool-off
    ends (``Retry-After``: the cool-off; each further wrong password starts it again)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "login_locked_out"

    def __init__(self):
        super().__init__(get_lockout_message())
        cool_off = get_cool_off()
        self.wait = int(cool_off.total_seconds()) if cool_off else None


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise serializers.ValidationError("Must be valid Unicode text.") from exc
    return value


class TokenAPI(APIView):
    throttle_classes = ()
    parser_classes = (parsers.FormParser, parsers.MultiPartParser, parsers.JSONParser)

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[_utf8])
        password = serializers.CharField(max_length=4096, trim_whitespace=False, validators=[_utf8],
                                         style={"input_type": "password"})

        class Meta:
            ref_name = "TokenInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()

        class Meta:
            ref_name = "TokenOutput"

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer},
                   description="A token for `Authorization: Token <key>`; the same token until it expires "
                               "(EMOVERSE_TOKEN_TTL_HOURS), is revoked, or the password changes.")
    def post(self, request):
        checked = self.InputSerializer(data=request.data)
        if not checked.is_valid():
            field, messages = next(iter(checked.errors.items()))
            raise LoginRefused(f"{field}: {messages[0]}", field=None if field == "non_field_errors" else field)
        user = authenticate(request=request, **checked.validated_data)
        if user is None:
            # django-axes flags the request when the username is (now) locked out.
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut()
            raise LoginRefused()
        # A token is a login: last_login is set and django-axes resets the failure count.
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response(self.OutputSerializer({"token": token_for_user(user=user).key}).data)

    @extend_schema(request=None, responses={204: None}, description="Revoke the caller's token.")
    def delete(self, request):
        tokens_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
