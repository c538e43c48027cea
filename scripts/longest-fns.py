#!/usr/bin/env python3
"""Lists the longest Rust functions below a folder (lines from `fn` to its
closing brace). Usage: scripts/longest-fns.py src/controller [N]
Used to hold the renovation's rule (no function over ~120 lines in
src/controller/ and src/cluster/); a rough brace counter, not a parser."""
import re,sys,os
def scan(path):
    lines=open(path).read().split('\n')
    out=[]
    i=0
    pat=re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
    while i<len(lines):
        m=pat.match(lines[i])
        if m:
            # find opening brace and match
            depth=0; started=False; j=i
            while j<len(lines):
                l=re.sub(r'"(\\.|[^"\\])*"','""',lines[j])
                l=re.sub(r"b?'(\\.|[^'\\])'","''",l)
                l=re.sub(r"//.*","",l)
                for ch in l:
                    if ch=='{': depth+=1; started=True
                    elif ch=='}': depth-=1
                if started and depth<=0: break
                if not started and l.rstrip().endswith(';'): break
                j+=1
            out.append((j-i+1,m.group(5),i+1))
        i+=1
    return out
res=[]
for root,_,fs in os.walk(sys.argv[1]):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(root,f)
            for n,name,ln in scan(p): res.append((n,f"{p}:{ln} {name}"))
res.sort(reverse=True)
for n,s in res[:int(sys.argv[2]) if len(sys.argv)>2 else 30]: print(n,s)
