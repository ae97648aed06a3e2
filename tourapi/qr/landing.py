"""The page behind a poster's URL, for phones without the tour app (the app claims the URL itself).

Bilingual, self-contained (no scripts, fonts or images from elsewhere), and honest about the code: it
says which venue and spot the poster belongs to, or why it is no longer valid. That makes it the staff's
test scan too: point any phone camera at a fresh poster and this page names the venue.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import quote

# The deep link the app registers (custom scheme), for browsers that did not hand the URL to the app.
APP_SCHEME = "tourapp"
# Where to get the app. Replace with the real store listings when the app is published.
STORE_LINKS = (
    ("App Store", "https://apps.apple.com/cn/"),
    ("应用商店 Android", "https://app.mi.com/"),
)

MESSAGES: dict[str, tuple[str, str]] = {
    "invalid-token": ("这个二维码无效。", "This code is not valid."),
    "unknown-key": ("这个二维码无法识别。", "This code cannot be recognised."),
    "retired-key": ("这张海报已过期，请告诉工作人员。", "This poster has expired; please tell the staff."),
    "checkpoint-revoked": (
        "这张海报已被替换，请告诉工作人员。",
        "This poster was replaced; please tell the staff.",
    ),
    "checkpoint-not-found": ("这个签到点不存在。", "This check-in point does not exist."),
    "checkpoint-inactive": ("这个签到点已停用。", "This check-in point is no longer in use."),
}


@dataclass(frozen=True, slots=True)
class Landing:
    token: str
    valid: bool
    reason: str | None = None  # a slug of MESSAGES when not valid
    venue_zh: str = ""
    venue_en: str = ""
    label_zh: str = ""
    label_en: str = ""
    manual_code: str = ""


def deep_link(token: str) -> str:
    return f"{APP_SCHEME}://checkin?token={quote(token)}"


_STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:0;padding:24px;max-width:32rem;margin-inline:auto;line-height:1.5;color:#111;background:#fff}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:0 0 1rem;font-weight:normal;color:#333}
.spot{border:1px solid #ccc;border-radius:8px;padding:12px 16px;margin:16px 0}
.button{display:block;text-align:center;background:#111;color:#fff;padding:14px;border-radius:8px;
text-decoration:none;font-size:1.1rem;margin:16px 0}
.code{font-size:1.6rem;letter-spacing:.2em;font-weight:bold}.bad{color:#a00;font-weight:bold}
small{color:#555}ul{padding-left:1.2rem}
"""


def render(page: Landing) -> str:
    e = escape
    if page.valid:
        body = f"""
<h1>{e(page.venue_zh)}</h1><h2>{e(page.venue_en)}</h2>
<div class="spot">签到点 · Check-in point: <strong>{e(page.label_zh)}</strong> · {e(page.label_en)}</div>
<a class="button" href="{e(deep_link(page.token))}">在夜游App中签到 · Check in with the tour app</a>
<p>没有自动打开App？打开夜游App，选择“输入签到码”，输入：<br>
App did not open? Open the tour app, choose “Enter code” and type:</p>
<p class="code">{e(page.manual_code)}</p>"""
    else:
        zh, en = MESSAGES.get(page.reason or "", MESSAGES["invalid-token"])
        body = f"""
<h1>夜游签到 · Night-tour check-in</h1>
<p class="bad">{e(zh)}<br>{e(en)}</p>"""
    stores = "".join(f'<li><a href="{e(url)}">{e(name)}</a></li>' for name, url in STORE_LINKS)
    return f"""<!doctype html>
<html lang="zh-Hans"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>夜游签到 · Night-tour check-in</title><style>{_STYLE}</style></head>
<body>{body}
<p>还没有安装夜游App？ · Don't have the tour app yet?</p><ul>{stores}</ul>
<p><small>扫描海报上的二维码即可签到；签到只记录您到访过此处，不记录位置。<br>
Scanning the poster checks you in; it records that you visited this place, not where you are.</small></p>
</body></html>
"""
