import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    from realtime_nb import Session
    from realtime_nb.widgets.marimo_view import marimo_panel

    mo.md(
        """
        # Quickstart in marimo: talk to the local assistant

        Press **Start** under the microphone, ask a question and pause: after the silence
        window the server ends your turn, transcribes it and answers out loud. The panel here
        is made of the anywidget parts marimo renders (mic, player, timeline) and HTML mirrors
        of the rest; settings are changed from cells (the slider below).
        Run it with `marimo edit notebooks/marimo_quickstart.py` (or `marimo run` for the app).
        """
    )
    return Session, marimo_panel, mo


@app.cell
async def _(Session):
    # Top-level await works in marimo cells; the session then lives on as background tasks
    # of the notebook's event loop (no cell has to keep running).
    session = Session()  # the local server (no key); OpenAI when OPENAI_API_KEY is set
    await session.connect()
    _ = await session.update(transcription={"model": "whisper-1"})  # show your own words
    return (session,)


@app.cell
def _(marimo_panel, session):
    view = marimo_panel(session)
    view
    return (view,)


@app.cell
def _(mo):
    silence = mo.ui.slider(200, 1500, step=50, value=500, label="silence window (ms)",
                           show_value=True)
    silence
    return (silence,)


@app.cell
async def _(session, silence):
    # marimo re-runs this cell whenever the slider moves: a live VAD setting.
    updated = await session.update(
        turn_detection={"type": "server_vad", "silence_duration_ms": silence.value})
    updated["session"]["audio"]["input"]["turn_detection"]
    return


if __name__ == "__main__":
    app.run()
