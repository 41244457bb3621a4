"""Python functions as tools: declarations from signatures, and calls run for the model.

The round trips use the real local server (its stand-in model calls a tool when the user's words
name it: "weather" → ``get_weather``) with real TTS off (text turns) except in the voice test.
"""

from __future__ import annotations

import asyncio
import enum
import json
import threading
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

import pytest

from realtime_nb import Session, function_tool
from realtime_nb.client import Tools
from realtime_nb.protocol import FunctionTool
from realtime_nb.server import LocalServer


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Place(TypedDict):
    city: str
    country: str


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """The current weather in a city.

    Args:
        city: The city's name,
            as the user said it.
        unit: Temperature unit.
    """
    celsius = {"paris": 18, "london": 14, "tokyo": 22}.get(city.strip().lower())
    if celsius is None:
        raise ValueError(f"no weather station in {city!r}")
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit}


# ----------------------------------------------------------------------------- declarations
def test_schema_comes_from_the_signature_and_the_docstring() -> None:
    tool = function_tool(get_weather)
    assert isinstance(tool, FunctionTool)
    assert tool.name == "get_weather" and tool.description == "The current weather in a city."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, as the user said it."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                     "description": "Temperature unit.", "default": "celsius"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_richer_annotations_map_to_json_schema() -> None:
    def plan(places: list[Place], unit: Unit, days: int | None = None, tags: tuple[str, ...] = (),
             extra: dict[str, Any] | None = None, anything: Any = None) -> str:
        """Plan a trip."""
        return ""

    props = function_tool(plan).parameters["properties"]
    assert props["places"] == {"type": "array", "items": {
        "type": "object", "properties": {"city": {"type": "string"},
                                         "country": {"type": "string"}},
        "required": ["city", "country"]}}
    assert props["unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert props["days"] == {"type": "integer"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["extra"] == {"type": "object"}
    assert props["anything"] == {}
    assert function_tool(plan).parameters["required"] == ["places", "unit"]


@pytest.mark.parametrize("bad", [
    lambda *args: None,
    lambda **kw: None,
])
def test_var_arguments_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="named JSON arguments"):
        function_tool(bad, name="bad")


def test_a_type_without_a_json_form_is_refused_with_the_parameter_named() -> None:
    def f(when: threading.Event) -> None:
        """Nope."""

    with pytest.raises(TypeError, match=r"f\(when\).*no JSON form"):
        function_tool(f)


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(TypeError, match="tool name"):
        function_tool(lambda city: city)
    assert function_tool(lambda city: city, name="echo_city").name == "echo_city"


# ----------------------------------------------------------------------------- round trips
@pytest.fixture
async def session() -> AsyncIterator[Session]:
    async with LocalServer(port=0) as srv, Session(url=srv.url) as s:
        await s.update(output_modalities=["text"])
        yield s


async def test_a_text_turn_runs_the_tool_and_answer_gives_the_reply_using_it(
        session: Session) -> None:
    tools = await session.use_tools(get_weather)
    assert [t["name"] for t in session.config["tools"]] == ["get_weather"]
    first = await session.say("What is the weather in Paris?")
    final = await tools.answer(first, timeout=30)
    assert final.id != first.id and final.status == "completed"
    assert "18" in final.text
    [call] = tools.calls
    assert call.ok and call.name == "get_weather" and json.loads(call.arguments)["city"]
    assert call.result["temperature"] == 18 and call.response_id == first.id
    outputs = [i for i in session.items.list() if i.type == "function_call_output"]
    assert len(outputs) == 1 and outputs[0].item["call_id"] == call.call_id
    marker = session.events.of_type("realtime_nb.tool_call")[-1].event
    assert marker["name"] == "get_weather" and marker["error"] is None


async def test_a_reply_without_a_call_is_its_own_answer(session: Session) -> None:
    tools = await session.use_tools(get_weather)
    first = await session.say("Good morning!")
    assert (await tools.answer(first, timeout=10)).id == first.id
    assert tools.calls == []


async def test_a_failing_tool_reports_the_error_to_the_model_not_the_kernel(
        session: Session) -> None:
    tools = await session.use_tools(get_weather)
    final = await tools.answer(await session.say("What is the weather in Atlantis?"),
                               timeout=30)
    [call] = tools.calls
    assert not call.ok and "no weather station" in call.error
    assert json.loads(call.output) == {"error": call.error}
    assert "no weather station" in final.text
    assert session.callback_errors == []


async def test_async_tools_are_awaited_and_plain_ones_run_off_the_loop(
        session: Session) -> None:
    threads: list[str] = []

    def add_numbers(a: float, b: float) -> float:
        """Add two numbers."""
        threads.append(threading.current_thread().name)
        return a + b

    async def get_time(city: str) -> str:
        """The local time in a city."""
        await asyncio.sleep(0)
        return f"noon in {city}"

    tools: Tools = await session.use_tools(add_numbers, get_time)
    await tools.answer(await session.say("Please add 12 and 30."), timeout=30)
    await tools.answer(await session.say("What is the time in Paris?"), timeout=30)
    assert [c.name for c in tools.calls] == ["add_numbers", "get_time"]
    assert tools.calls[0].result == 42 and tools.calls[1].output == "noon in Paris"
    assert threads and threads[0] != threading.current_thread().name


async def test_arguments_the_function_cannot_take_are_an_error_output(session: Session) -> None:
    def strict(code: int) -> int:
        """A strict tool."""
        return code

    tools = await session.use_tools(strict, respond=False)
    # The stand-in model fills arguments from the schema; hand the runner a call with a wrong
    # name, as a confused model could send.
    done = {"type": "response.done", "response": {
        "id": "resp_fake1", "status": "completed",
        "output": [{"type": "function_call", "name": "strict", "call_id": "call_x1",
                    "arguments": json.dumps({"kode": 3})}]}}
    await tools._on_done(done)
    [call] = tools.calls
    assert call.error == ("TypeError: strict() got unexpected argument(s) 'kode' and missing "
                          "required argument(s) 'code'; it takes code")


async def test_use_tools_again_replaces_the_previous_set(session: Session) -> None:
    first = await session.use_tools(get_weather)

    def add_numbers(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    second = await session.use_tools(add_numbers)
    assert [t["name"] for t in session.config["tools"]] == ["add_numbers"]
    await second.answer(await session.say("Please add 2 and 3."), timeout=30)
    assert first.calls == [] and [c.result for c in second.calls] == [5]
