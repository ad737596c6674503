"""`--proposer llm --model PROVIDER:NAME`: one structured call to a model, through pydantic-ai.

The model gets the prompt of autoresearch/prompt.py (rules as instructions, the material as the user
message) and must answer with a `Reply`. A reply that does not validate, or whose edits do not apply to
the editable files (search text missing, a path that is not editable, code that does not compile), is
sent back with the error, at most MAX_RETRIES times; after that the idea comes back refused, and the loop
logs it as a crash row with the reason and goes on.

Provider failures (HTTP 5xx, 429, a refused connection, a timeout) are retried by autoresearch/patience.py,
with the SDK's own retries turned off and `proposer_timeout_seconds` per request; `check()` makes one tiny
request before the loop, so a dead URL, a wrong path, a bad key or an unknown model fails before training.

API keys: the provider's own environment variable (ANTHROPIC_API_KEY, OPENAI_API_KEY, ...), or a Prefect
Secret block named by `api_key_secret` (loaded when the proposal is made). Keys are never logged.
Needs the optional extra: `pip install 'autoresearch-prefect[llm]'`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from autoresearch import patience
from autoresearch.edits import apply_edits
from autoresearch.errors import UserError
from autoresearch.models import FileEdit, Proposal, ProposalContext, Usage
from autoresearch.prompt import LLM_ANSWER, MAX_DESCRIPTION, build_prompt
from autoresearch.proposers.base import Proposer
from autoresearch.secrets import remember

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models import Model
    from pydantic_ai.settings import ModelSettings

MAX_RETRIES = 2  # replies sent back with their error before the idea is logged as a crash
INSTALL_HINT = "--proposer llm needs pydantic-ai: pip install 'autoresearch-prefect[llm]'"
RETRIED_STATUS = (408, 409, 425, 429)  # besides 5xx: worth another try after a wait
CHECK_PROMPT = "Reply with the word OK."

# Models registered by name (tests, or a plugin wrapping a model of its own); they win over provider strings.
_MODELS: dict[str, Callable[[], Model]] = {}


def register_model(name: str, factory: Callable[[], Model]) -> None:
    _MODELS[name] = factory


class Reply(BaseModel):
    """What the model must answer: one idea and the search/replace edits that implement it."""

    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION, description="one line, no tabs")
    rationale: str = Field(description="why this should improve the metric")
    edits: list[FileEdit] = Field(min_length=1, description="search/replace edits of the editable files")

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\t" in value or "\n" in value or "\r" in value:
            raise ValueError("the description must be one line without tabs")
        return value.strip()


class LLMProposer(Proposer):
    """One idea per call from any model pydantic-ai supports (anthropic:..., openai:..., ollama:...)."""

    name = "llm"
    can_fix = True

    def __init__(
        self,
        model: str | None = None,
        api_key_secret: str | None = None,
        proposer_timeout_seconds: float = patience.DEFAULT_TIMEOUT,
        proposer_patience_seconds: float = patience.DEFAULT_PATIENCE,
        **options: Any,
    ) -> None:
        super().__init__(model=model, api_key_secret=api_key_secret, **options)
        self.timeout, self.patience = float(proposer_timeout_seconds), float(proposer_patience_seconds)
        if not model:
            raise UserError("--proposer llm needs --model PROVIDER:NAME, e.g. --model anthropic:claude-sonnet-4-5")
        try:
            import pydantic_ai  # noqa: F401
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        self.model_name = model
        self.api_key_secret = api_key_secret
        self._model = self.model()  # an unknown provider or a missing API key: one line now, not mid-loop

    def model(self) -> Model:
        from pydantic_ai.exceptions import UserError as PydanticAIUserError
        from pydantic_ai.models import infer_model
        from pydantic_ai.providers import infer_provider, infer_provider_class

        if self.model_name in _MODELS:
            return _MODELS[self.model_name]()
        factory = infer_provider
        if self.api_key_secret:
            key = _secret(self.api_key_secret)

            def factory(provider: str) -> Any:
                try:
                    return infer_provider_class(provider)(api_key=key)
                except TypeError:
                    raise UserError(f"provider {provider!r} takes no API key; drop --api-key-secret") from None

        try:
            return infer_model(self.model_name, provider_factory=factory)
        except (PydanticAIUserError, ValueError) as exc:
            raise UserError(f"--model {self.model_name}: {_first_line(exc)}") from None
        except ImportError:
            raise UserError(f"--model {self.model_name}: its provider's package is missing; {INSTALL_HINT}") from None

    def settings(self, **extra: Any) -> ModelSettings:
        """One attempt per request (our retries are patient, the SDK's are not), within the timeout."""
        wanted: dict[str, Any] = {"max_retries": 0, "timeout": self.timeout, "request_timeout": self.timeout, **extra}
        return {key: value for key, value in wanted.items() if key not in self._model.unsupported_settings}  # type: ignore[return-value]

    def where(self) -> str:
        return f"{self._model.system} at {self._model.base_url or self.model_name}"

    def check(self) -> None:
        """One tiny request before the loop: a dead URL, a wrong path, a bad key or an unknown model is one line now."""
        from pydantic_ai import ModelRequest
        from pydantic_ai.direct import model_request_sync
        from pydantic_ai.exceptions import ModelAPIError

        if self.model_name in _MODELS:
            return
        try:
            model_request_sync(
                self._model, [ModelRequest.user_text_prompt(CHECK_PROMPT)], model_settings=self.settings(max_tokens=16)
            )
        except ModelAPIError as exc:
            problem = endpoint_problem(exc, self._model.system, self._model.base_url or "", self._model.model_name)
            if problem:
                raise UserError(problem) from None
            patience.warn(
                f"the check request to {self.where()} failed ({_first_line(exc)}); starting anyway, failures are retried"
            )

    def propose(self, context: ProposalContext) -> Proposal:
        spent: list[Usage] = []
        policy = patience.Policy(key=self.where(), patience=self.patience, warn=patience.warn)
        try:
            proposal = patience.patiently(lambda: self._propose_once(context, spent), self._failure, policy)
        except UserError as exc:  # ProviderUnavailable, or a request the provider refused
            exc.usage = sum(spent, Usage()) if spent else None  # a failed proposal still cost tokens
            raise
        return proposal.model_copy(update={"usage": sum(spent, Usage())})

    def _failure(self, exc: BaseException) -> patience.Failure | None:
        status = retryable_status(exc)
        if status is None:
            return None
        retry_after = getattr(exc, "retry_after", None)
        return patience.Failure(self._model.system, self._model.base_url or self.model_name, status, retry_after)

    def _propose_once(self, context: ProposalContext, spent: list[Usage]) -> Proposal:
        from pydantic_ai import Agent, ModelRetry, RunContext, capture_run_messages
        from pydantic_ai.exceptions import ModelAPIError, UnexpectedModelBehavior

        prompt = build_prompt(context, LLM_ANSWER)
        agent = Agent(self._model, output_type=Reply, instructions=prompt.rules, retries={"output": MAX_RETRIES})
        last: list[Reply] = []
        refusals: list[str] = []

        @agent.output_validator
        def edits_apply(ctx: RunContext[None], reply: Reply) -> Reply:
            last.append(reply)
            result = apply_edits(context.editable_files, reply.edits)
            if result.refused:
                refusals.append(result.refused)
                raise ModelRetry(f"Your edits were refused: {result.refused}. Send the whole proposal again, corrected.")
            return reply

        with capture_run_messages() as messages:
            try:
                reply = agent.run_sync(prompt.body, model_settings=self.settings()).output
            except ModelAPIError as exc:
                if retryable_status(exc) is None:
                    raise UserError(f"{self.where()} refused the request ({_said(exc)}); fix the cause, then run again") from None
                raise
            except UnexpectedModelBehavior as exc:
                attempted = last[-1] if last else None
                return Proposal(
                    description=attempted.description if attempted else "llm: no valid proposal",
                    rationale=attempted.rationale if attempted else "",
                    edits=attempted.edits if attempted else [],
                    refused=f"{_last_error(exc, refusals)} (after {MAX_RETRIES} retries)",
                )
            finally:
                spent.append(usage_of(messages))
        return Proposal(description=reply.description, rationale=reply.rationale, edits=reply.edits)


def retryable_status(exc: BaseException) -> str | None:
    """How a provider failure worth retrying reads ("HTTP 503", "connection refused", ...); None for others."""
    from pydantic_ai.exceptions import (
        ModelAPIError,
        ModelConnectionError,
        ModelHTTPError,
        ModelQuotaExceededError,
        ModelRequestRejectedError,
        ModelRequestTimeout,
    )

    if isinstance(exc, ModelHTTPError):
        code = exc.status_code
        return f"HTTP {code}" if code >= 500 or code in RETRIED_STATUS else None
    if isinstance(exc, ModelRequestTimeout):
        return f"no answer within {exc.timeout:g} s"
    if isinstance(exc, ModelConnectionError):
        kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
        return f"{kind}: {_first_line(_root_cause(exc))}"
    if isinstance(exc, (ModelRequestRejectedError, ModelQuotaExceededError)):
        return None
    if isinstance(exc, ModelAPIError):  # an invalid or unreadable reply
        return f"invalid reply: {_first_line(exc)}"
    return None


def endpoint_problem(exc: BaseException, system: str, url: str, model: str) -> str | None:
    """The one-line error for a check request that cannot work as configured; None if it may be transient."""
    from pydantic_ai.exceptions import ModelAuthenticationError, ModelConnectionError, ModelHTTPError

    env = system.upper().replace("-", "_")
    if isinstance(exc, ModelConnectionError) and "timeout" not in type(exc).__name__.lower():
        reason = _first_line(_root_cause(exc))
        return f"cannot reach {system} at {url} ({reason}); start the server, or fix the URL ({env}_BASE_URL)"
    if isinstance(exc, ModelAuthenticationError):
        return f"{system} at {url} rejected the API key ({_said(exc)}); set {env}_API_KEY or --api-key-secret"
    if isinstance(exc, ModelHTTPError) and exc.status_code == 404:
        if "model" in str(exc.body).lower() or exc.provider_error_code == "model_not_found":
            hint = f" (did you mean {exc.suggested_model_id!r}?)" if exc.suggested_model_id else ""
            return f"{system} at {url} does not know the model {model!r}{hint}; fix --model"
        return f"{url} answered 404 Not Found: wrong path; fix the URL ({env}_BASE_URL; OpenAI-compatible servers usually end in /v1)"
    return None


def usage_of(messages: list[ModelMessage]) -> Usage:
    """Tokens of every model response in the run; dollars from genai-prices, or None if any price is unknown."""
    from pydantic_ai.messages import ModelResponse

    responses = [m for m in messages if isinstance(m, ModelResponse)]
    total = Usage(
        requests=len(responses),
        input_tokens=sum(r.usage.input_tokens for r in responses),
        output_tokens=sum(r.usage.output_tokens for r in responses),
    )
    cost = Decimal(0)
    for response in responses:
        try:
            cost += response.cost().total_price
        except (LookupError, ValueError, AssertionError):  # genai-prices knows no price for this model/provider
            return total
    return total.model_copy(update={"cost_usd": float(cost)}) if responses else total


def _last_error(exc: BaseException, refusals: list[str]) -> str:
    """Why the last reply failed: its edits were refused, or it did not validate (and where)."""
    from pydantic_ai import ModelRetry

    cause = exc.__cause__
    if isinstance(cause, ModelRetry) and refusals:
        return refusals[-1]
    if isinstance(cause, ValidationError) and cause.errors():
        error = cause.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"the model's reply did not validate: {where}: {error['msg']}"
    return f"the model's reply did not validate: {_first_line(exc)}"


def _secret(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        return remember(str(Secret.load(name).get()))  # redacted from logs, artifacts and prompts from now on
    except ValueError:
        raise UserError(
            f"no Prefect Secret block named {name!r}; create it (prefect block create secret) or fix --api-key-secret"
        ) from None


def _said(exc: BaseException) -> str:
    """What the provider said: the status and its error message, not the whole body."""
    body, status = getattr(exc, "body", None), getattr(exc, "status_code", None)
    message = body.get("message") if isinstance(body, dict) else None
    prefix = f"HTTP {status}" if status else type(exc).__name__
    return f"{prefix}: {_first_line(Exception(message))}" if message else f"{prefix}: {_first_line(exc)}"


def _root_cause(exc: BaseException) -> BaseException:
    """The transport's own error under the SDK's and pydantic-ai's wrappers (e.g. "[Errno 111] Connection refused")."""
    seen = [exc]
    while seen[-1].__cause__ is not None and len(seen) < 10:
        seen.append(seen[-1].__cause__)
    return seen[-1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
