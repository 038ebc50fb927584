"""`photoclass serve`: a web page and JSON API over one model, on Starlette and uvicorn, with
dynamic batching (`batching`), the HTTP application (`app`) and the server (`server`)."""
