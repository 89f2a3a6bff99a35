# Turns Maude's `show path N` output (run with -no-wrap) into a one-line trace.
#
# Every rule of the model adds exactly one step event (sentM1, gotM1, gotM2,
# gotM3, gotChal, gotAnswer, doneI, gotRec, tick, leak) to the state's event
# multiset, so the step taken between two states is the step event present in
# the later state and not in the earlier one. Used by scripts/model-check.

# All balanced-parenthesis occurrences of the step events in one state line.
function steps(line, out,    n, re, start, i, depth, c, term, count) {
    count = 0
    re = "(sentM1|gotM1|gotM2|gotM3|gotChal|gotAnswer|doneI|doneR|gotRec|tick|leak)\\("
    while (match(line, re)) {
        start = RSTART
        depth = 0
        for (i = start; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (c == "(") depth++
            else if (c == ")") { depth--; if (depth == 0) break }
        }
        term = substr(line, start, i - start + 1)
        out[++count] = term
        line = substr(line, i + 1)
    }
    return count
}

function sess(s) {
    gsub(/ini\(/, "i", s); gsub(/rsp\(/, "r", s); gsub(/\)/, "", s)
    return s
}

function share(e) {
    if (e ~ /xa\(/) { gsub(/.*xa\(|\).*/, "", e); return "attacker share " e }
    if (e ~ /xst\(/) return "reused share"
    gsub(/ep\(x\(|\)\)$/, "", e)
    return "share of " sess(e)
}

# Top-level arguments of a term f(a, b, ...).
function args(term, a,    inner, n, depth, i, c, cur) {
    inner = substr(term, index(term, "(") + 1)
    inner = substr(inner, 1, length(inner) - 1)
    n = 0; depth = 0; cur = ""
    for (i = 1; i <= length(inner); i++) {
        c = substr(inner, i, 1)
        if (c == "(") depth++
        if (c == ")") depth--
        if (c == "," && depth == 0) { a[++n] = cur; cur = ""; i++; continue }
        cur = cur c
    }
    a[++n] = cur
    return n
}

function describe(term,    a, n, name, x) {
    name = substr(term, 1, index(term, "(") - 1)
    n = args(term, a)
    if (name == "sentM1") return a[2] "/" sess(a[1]) " sends M1"
    if (name == "gotM1") return a[2] "/" sess(a[1]) " answers M1 (" share(a[3]) (a[4] == "f1" ? ", flag full" : "") ") with M2"
    if (name == "gotM2") return a[2] "/" sess(a[1]) " accepts M2 as " a[3] " (" share(a[4]) "), sends M3"
    if (name == "gotM3") return a[2] "/" sess(a[1]) " accepts M3 from " a[3]
    if (name == "gotChal") return a[2] "/" sess(a[1]) " answers the factor round with its secret"
    if (name == "gotAnswer") return a[2] "/" sess(a[1]) " accepts " a[3] "'s factor answer"
    if (name == "doneI") return a[2] "/" sess(a[1]) " accepts M4: session with " a[3]
    if (name == "doneR") return a[2] "/" sess(a[1]) " sends M4: session with " a[3]
    if (name == "gotRec") { x = a[3]; gsub(/data\(|\)$/, "", x); return sess(a[1]) " accepts a record made by " sess(x) }
    if (name == "tick") return "the clock moves one window on"
    if (name == "leak") return a[1] "'s long-term key leaks"
    return term
}

BEGIN {
    nranks = split("tick leak sentM1 gotM1 gotM2 gotM3 gotChal gotAnswer doneR doneI gotRec", rank, " ")
}

/^state [0-9]+, State: / {
    n = steps($0, cur)
    delete now
    for (i = 1; i <= n; i++) now[cur[i]]++
    # The new step events, in a fixed order (a responder's gotM3 or gotAnswer
    # and its doneR come in one step).
    line = ""
    for (r = 1; r <= nranks; r++)
        for (t in now)
            if (now[t] > prev[t] && index(t, rank[r] "(") == 1) {
                d = describe(t)
                line = (line == "" ? d : line " + " d)
            }
    if (line != "") trace = (trace == "" ? line : trace " ; " line)
    delete prev
    for (t in now) prev[t] = now[t]
}

END { print trace }
