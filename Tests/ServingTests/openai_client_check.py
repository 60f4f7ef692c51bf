"""The official `openai` Python client against `llava-forge serve` (run by ServeProcessTests).

    python3 openai_client_check.py --text-url http://127.0.0.1:P/v1 --image-url http://127.0.0.1:Q/v1 \
        --key KEY --image photo.jpg --expected-text "..."

Checks: a plain completion (greedy text equals --expected-text), the same as a stream (chunks
joined equal it, usage in the last chunk), an image as a data: URL on the llava server, and a
wrong key raising openai.AuthenticationError (401). Prints one line per check; exit 0 when all pass.
"""
import argparse
import base64
import sys

import openai


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-url", required=True)
    parser.add_argument("--image-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--expected-text", required=True)
    parser.add_argument("--expected-image-text", required=True)
    args = parser.parse_args()
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there, who are you?"}]

    client = openai.OpenAI(base_url=args.text_url, api_key=args.key, max_retries=0, timeout=60)
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-chat"], models
    print("models ok")

    plain = client.chat.completions.create(model="tiny-chat", messages=messages, temperature=0, max_tokens=24)
    assert plain.object == "chat.completion", plain
    choice = plain.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == args.expected_text, (choice.message.content, args.expected_text)
    assert choice.finish_reason in ("stop", "length"), choice.finish_reason
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    print("plain ok:", repr(choice.message.content))

    pieces, finish, usage = [], None, None
    stream = client.chat.completions.create(model="tiny-chat", messages=messages, temperature=0, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert "".join(pieces) == args.expected_text, ("".join(pieces), args.expected_text)
    assert finish == choice.finish_reason, finish
    assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens, usage
    print("stream ok:", len(pieces), "chunks")

    with open(args.image, "rb") as f:
        url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
    vision = openai.OpenAI(base_url=args.image_url, api_key=args.key, max_retries=0, timeout=60)
    answer = vision.chat.completions.create(model="tiny-llava", temperature=0, max_tokens=12, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is in the picture?"}]}])
    assert answer.choices[0].message.content == args.expected_image_text, (answer.choices[0].message.content, args.expected_image_text)
    print("image ok:", repr(answer.choices[0].message.content))

    try:
        openai.OpenAI(base_url=args.text_url, api_key="wrong-key", max_retries=0).chat.completions.create(
            model="tiny-chat", messages=messages, max_tokens=2)
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        print("wrong key ok: AuthenticationError", e.status_code)
    else:
        sys.exit("a wrong key was accepted")

    try:
        client.chat.completions.create(model="tiny-chat", messages=[], max_tokens=2)
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "messages" in str(e), e
        print("bad request ok:", e.status_code)
    else:
        sys.exit("empty messages were accepted")
    print("all openai client checks passed")


if __name__ == "__main__":
    main()
