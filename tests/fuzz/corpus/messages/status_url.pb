
7e7eavatar r https://cdn.example.com/talk.mp4JHi